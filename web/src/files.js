// "My files": the caller's files with their availability, and what can be done with each —
// download through a signed link, restore a cold one (watching it come back), delete.
import { bytes, date } from './format.js'

const STATES = {
  online: 'Online',
  cached: 'Online (restored)',
  restoring: 'Restoring…',
  cold: 'Cold: restore first',
  unavailable: 'Unavailable',
}
const AVAILABILITY_BATCH = 100 // what POST /api/files/availability takes at once
const RESTORE_POLL_MS = 3000
let report = () => {} // where a failed action's reason goes (set by createFileList)

export function createFileList ({ api, onChange, say }) {
  const rows = document.getElementById('file-rows')
  const table = document.getElementById('files')
  const empty = document.getElementById('files-empty')
  const watching = new Set()
  report = (message) => say(message, true)

  async function refresh () {
    const { files } = await api.get('/api/files')
    const states = await availability(files.map((file) => file.sha256))
    rows.replaceChildren(...files.map((file) => row(file, states.get(file.sha256))))
    table.hidden = files.length === 0
    empty.hidden = files.length !== 0
    for (const file of files) {
      if (states.get(file.sha256)?.state === 'restoring') watch(file.sha256)
    }
  }

  async function availability (checksums, restore = false) {
    const states = new Map()
    for (let start = 0; start < checksums.length; start += AVAILABILITY_BATCH) {
      const batch = checksums.slice(start, start + AVAILABILITY_BATCH)
      const answer = await api.post('/api/files/availability', { checksums: batch, restore })
      for (const item of answer.files) states.set(item.sha256, item)
    }
    return states
  }

  function row (file, state) {
    const name = file.name || file.sha256
    const tr = document.createElement('tr')
    tr.dataset.sha256 = file.sha256
    tr.append(
      cell('Name', name, 'name'),
      cell('Size', bytes(file.size)),
      checksumCell(file.sha256),
      cell('Uploaded', date(file.created_at)),
      cell('Expires', date(file.expires_at)),
      cell('Availability', describe(state), 'availability'),
      actions(file, name, state),
    )
    return tr
  }

  function actions (file, name, state) {
    const td = cell('Actions', '')
    const download = button('Download', `Download ${name}`, () => fetchFile(file.sha256))
    download.disabled = !state?.available
    td.append(download)
    if (state?.state === 'cold') {
      td.append(button('Restore', `Restore ${name}`, () => restore(file.sha256)))
    }
    td.append(button('Delete', `Delete ${name}`, () => remove(file.sha256, name), 'danger'))
    return td
  }

  async function fetchFile (sha256) {
    const { url } = await api.post(`/api/files/${sha256}/link`)
    const anchor = document.createElement('a')
    anchor.href = url
    anchor.download = ''
    anchor.rel = 'noopener'
    document.body.append(anchor)
    anchor.click()
    anchor.remove()
  }

  async function restore (sha256) {
    await availability([sha256], true)
    say('Restoring the file; it becomes downloadable when it is back.')
    await refresh()
  }

  function watch (sha256) {
    if (watching.has(sha256)) return
    watching.add(sha256)
    const started = Date.now()
    const timer = window.setInterval(async () => {
      const state = (await availability([sha256])).get(sha256)
      const shown = rows.querySelector(`tr[data-sha256="${sha256}"] .availability`)
      if (shown) {
        const seconds = Math.round((Date.now() - started) / 1000)
        shown.textContent = `${describe(state)} ${seconds} s`
      }
      if (state?.state !== 'restoring') {
        window.clearInterval(timer)
        watching.delete(sha256)
        await refresh()
      }
    }, RESTORE_POLL_MS)
  }

  async function remove (sha256, name) {
    if (!window.confirm(`Delete ${name}? This cannot be undone.`)) return
    await api.delete(`/api/files/${sha256}`)
    say(`Deleted ${name}.`)
    await refresh()
    await onChange()
  }

  return { refresh }
}

function describe (state) {
  if (!state) return '—'
  const label = STATES[state.state] ?? state.state
  return state.state === 'cached' ? `${label} until ${date(state.expires_at)}` : label
}

function cell (label, text, className) {
  const td = document.createElement('td')
  td.dataset.label = label
  td.textContent = text
  if (className) td.className = className
  return td
}

function checksumCell (sha256) {
  const td = cell('SHA-256', '')
  const code = document.createElement('code')
  code.className = 'checksum'
  code.textContent = sha256
  const copy = button('Copy', 'Copy the SHA-256', () => navigator.clipboard.writeText(sha256))
  td.append(code, copy)
  return td
}

function button (text, label, action, className) {
  const element = document.createElement('button')
  element.type = 'button'
  element.textContent = text
  element.setAttribute('aria-label', label)
  if (className) element.className = className
  element.addEventListener('click', () => {
    Promise.resolve(action()).catch((error) => report(error.message))
  })
  return element
}
