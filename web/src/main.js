// The page: sign in, then Uppy's Dashboard uploads over tus to the gateway, and "My files"
// lists, downloads, restores and deletes. Every limit shown comes from the gateway.
import Uppy from '@uppy/core'
import Dashboard from '@uppy/dashboard'
import GoldenRetriever from '@uppy/golden-retriever'
import Tus from '@uppy/tus'

import { createApi, ApiError } from './api.js'
import { localAuth, oidcAuth } from './auth.js'
import { createFileList } from './files.js'
import { bytes } from './format.js'

// Waits between retries of a failed request (tus-js-client): a short network cut or a
// restarting gateway costs seconds, not the upload.
const RETRY_DELAYS = [0, 1000, 3000, 5000, 10000, 20000, 30000]

const $ = (id) => document.getElementById(id)

function say (message, error = false) {
  const status = $('status')
  status.textContent = message
  status.classList.toggle('error', error)
}

async function boot () {
  const config = await (await fetch('/api/config')).json()
  const auth = config.auth === 'oidc' ? await oidcAuth(config.oidc) : await localAuth()
  $('sign-out').addEventListener('click', () => auth.signOut())
  $('token-form').addEventListener('submit', (event) => {
    event.preventDefault()
    auth.accept($('token-input').value)
    $('token-input').value = ''
    start(config, auth).catch(fail)
  })
  if (!auth.signedIn()) {
    askForToken('Sign in to upload and download files.')
    return
  }
  await start(config, auth)
}

function askForToken (message) {
  say(message)
  $('app').hidden = true
  $('account').hidden = true
  $('sign-in').hidden = false
  $('token-input').focus()
}

async function start (config, auth) {
  const api = createApi(auth)
  let me
  try {
    me = await api.get('/api/me')
  } catch (error) {
    if (error instanceof ApiError && error.status === 401 && auth.mode === 'local') {
      window.sessionStorage.clear()
      askForToken(`That token was refused (${error.message}). Sign in again.`)
      return
    }
    throw error
  }
  $('sign-in').hidden = true
  $('account').hidden = false
  $('app').hidden = false
  $('who').textContent = `Signed in as ${me.name}`
  say('')

  const showQuota = (report) => {
    const used = report.usage.bytes
    const limit = report.limits.max_bytes
    $('quota-meter').max = Math.max(limit, 1)
    $('quota-meter').value = Math.min(used, limit)
    $('quota-text').textContent = `${bytes(used)} of ${bytes(limit)} used`
  }
  const updateQuota = async () => showQuota(await api.get('/api/me'))
  showQuota(me)

  const files = createFileList({ api, onChange: updateQuota, say })
  $('refresh').addEventListener('click', () => {
    Promise.all([files.refresh(), updateQuota()]).catch(fail)
  })
  createUploader(config, auth, me, async () => {
    await files.refresh()
    await updateQuota()
  })
  await files.refresh()
}

function createUploader (config, auth, me, onUploaded) {
  const maxFileSize = Math.min(config.max_size, me.limits.max_file_size)
  const uppy = new Uppy({
    id: 'tusgate',
    autoProceed: true,
    restrictions: { maxFileSize, maxNumberOfFiles: me.limits.max_uploads },
  })
  uppy.use(Dashboard, {
    inline: true,
    target: '#dashboard',
    width: '100%',
    height: 380,
    proudlyDisplayPoweredByUppy: false,
    hideProgressDetails: false,
    note: `Up to ${bytes(maxFileSize)} per file. Uploads resume after a lost connection or a reload.`,
  })
  uppy.use(Tus, {
    endpoint: config.tus.endpoint,
    chunkSize: config.tus.chunk_size,
    limit: config.tus.parallel_uploads,
    retryDelays: RETRY_DELAYS,
    removeFingerprintOnSuccess: true,
    async onBeforeRequest (request) {
      request.setHeader('Authorization', `Bearer ${await auth.token()}`)
    },
    onShouldRetry (error, attempt, options, next) {
      if (error?.originalResponse?.getStatus() === 401 && attempt < 2) {
        auth.refresh() // the next request asks for the token again
        return true
      }
      return next(error)
    },
  })
  uppy.on('restored', () => {
    // After a reload, carry on at once when every file's bytes came back (Golden Retriever
    // keeps files up to 10 MiB); for larger ones the Dashboard asks to pick them again, and tus
    // resumes them from the offset the gateway has.
    if (uppy.getFiles().every((file) => !file.isGhost)) uppy.emit('restore-confirmed')
  })
  uppy.use(GoldenRetriever)
  uppy.on('upload-success', () => onUploaded().catch(fail))
  uppy.on('upload-error', (file, error) => {
    // Show the gateway's own reason (quota, size…) on the file, not tus-js-client's wrapper.
    const body = error?.originalResponse?.getBody()?.trim()
    if (file && body) {
      uppy.setFileState(file.id, { error: body })
      uppy.info(body, 'error', 8000)
    }
  })
  return uppy
}

function fail (error) {
  say(error.message || String(error), true)
}

boot().catch(fail)
