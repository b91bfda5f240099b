// Builds the page into dist/: one bundled script, one stylesheet, the HTML and the icon.
// Run by ./scripts/serve and ./scripts/test through scripts/web (npm ci && npm run build).
import { copyFile, mkdir, rm } from 'node:fs/promises'
import * as esbuild from 'esbuild'

await rm('dist', { recursive: true, force: true })
await mkdir('dist/assets', { recursive: true })
await esbuild.build({
  entryPoints: { app: 'src/main.js', style: 'src/style.css' },
  outdir: 'dist/assets',
  bundle: true,
  minify: true,
  sourcemap: true,
  format: 'esm',
  target: ['es2022'],
  legalComments: 'linked',
  logLevel: 'warning',
})
await copyFile('src/index.html', 'dist/index.html')
await copyFile('src/favicon.svg', 'dist/assets/favicon.svg')
