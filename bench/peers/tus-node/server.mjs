// tus-node-server as a peer in tusgate's benchmark: `node server.mjs PORT file DIR` or
// `node server.mjs PORT s3 BUCKET` (S3 endpoint and keys from BENCH_S3_* variables).
// Started by bench/peers.py with the packages pinned in package-lock.json (`npm ci`).
import http from 'node:http'
import { Server } from '@tus/server'
import { FileStore } from '@tus/file-store'
import { S3Store } from '@tus/s3-store'

const [port, kind, where] = process.argv.slice(2)
const datastore =
  kind === 's3'
    ? new S3Store({
        partSize: 5 * 1024 * 1024,
        s3ClientConfig: {
          bucket: where,
          endpoint: process.env.BENCH_S3_ENDPOINT,
          region: process.env.BENCH_S3_REGION,
          forcePathStyle: true, // moto serves buckets by path, not by host name
          credentials: {
            accessKeyId: process.env.BENCH_S3_ACCESS_KEY,
            secretAccessKey: process.env.BENCH_S3_SECRET_KEY,
          },
        },
      })
    : new FileStore({ directory: where })
const tus = new Server({ path: '/files', datastore })
http.createServer((req, res) => tus.handle(req, res)).listen(Number(port), '127.0.0.1')
