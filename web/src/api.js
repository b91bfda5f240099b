// The gateway's JSON API with the user's token; failures carry the gateway's one-line reason.
export class ApiError extends Error {
  constructor (status, message) {
    super(message)
    this.status = status
  }
}

export function createApi (auth) {
  async function call (method, path, body, retried = false) {
    const headers = { Authorization: `Bearer ${await auth.token()}` }
    if (body !== undefined) headers['Content-Type'] = 'application/json'
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    if (response.status === 401 && !retried && await auth.refresh()) {
      return call(method, path, body, true)
    }
    if (!response.ok) throw new ApiError(response.status, await reason(response))
    return response.status === 204 ? null : response.json()
  }
  return {
    get: (path) => call('GET', path),
    post: (path, body) => call('POST', path, body),
    delete: (path) => call('DELETE', path),
  }
}

export async function reason (response) {
  const text = (await response.text()).trim()
  try {
    return JSON.parse(text).error ?? text
  } catch {
    return text || `${response.status} ${response.statusText}`
  }
}
