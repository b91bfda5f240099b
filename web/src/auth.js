// Who the page acts for. Local mode: a token from the local issuer, taken from the address's
// fragment (which browsers never send to a server) or pasted in, kept in sessionStorage until
// sign-out. OIDC mode: keycloak-js, authorization code + PKCE, the token refreshed before it
// runs out, so a long upload outlives a short-lived token.
import Keycloak from 'keycloak-js'

const KEY = 'tusgate.token'
const MIN_VALIDITY_SECONDS = 30

export async function localAuth () {
  const fragment = new URLSearchParams(window.location.hash.slice(1))
  if (fragment.has('token')) {
    window.sessionStorage.setItem(KEY, fragment.get('token'))
    // Out of the address bar and the history at once: no token in a URL anyone can copy.
    window.history.replaceState(null, '', window.location.pathname + window.location.search)
  }
  return {
    mode: 'local',
    signedIn: () => window.sessionStorage.getItem(KEY) !== null,
    accept: (token) => window.sessionStorage.setItem(KEY, token.trim()),
    token: async () => window.sessionStorage.getItem(KEY),
    refresh: async () => false, // a local token cannot be renewed: sign in again
    signOut: async () => {
      window.sessionStorage.removeItem(KEY)
      window.location.assign('/')
    },
  }
}

export async function oidcAuth ({ url, realm, client_id: clientId }) {
  const keycloak = new Keycloak({ url, realm, clientId })
  await keycloak.init({ onLoad: 'login-required', pkceMethod: 'S256', checkLoginIframe: false })
  return {
    mode: 'oidc',
    signedIn: () => Boolean(keycloak.authenticated),
    accept: () => {},
    token: async () => {
      await keycloak.updateToken(MIN_VALIDITY_SECONDS)
      return keycloak.token
    },
    refresh: async () => keycloak.updateToken(-1), // the gateway refused the token: a new one
    signOut: async () => keycloak.logout({ redirectUri: `${window.location.origin}/` }),
  }
}
