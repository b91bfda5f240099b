// Upload one file with tus-js-client, as a Node application would; prints the upload URL.
// Usage: node tus-upload.mjs ENDPOINT TOKEN PATH PARALLEL CHUNK_BYTES
import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { Upload } from "tus-js-client";

const [endpoint, token, path, parallel, chunkSize] = process.argv.slice(2);
const data = await readFile(path);
const upload = new Upload(data, {
  endpoint,
  parallelUploads: Number(parallel),
  chunkSize: Number(chunkSize),
  headers: { Authorization: `Bearer ${token}` },
  metadata: { filename: basename(path), filetype: "application/octet-stream" },
  retryDelays: [0, 500, 1000, 2000],
  onError: (error) => {
    console.error(`upload failed: ${error}`);
    process.exit(1);
  },
  onSuccess: () => console.log(upload.url),
});
upload.start();
