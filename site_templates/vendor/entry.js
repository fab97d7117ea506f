// What the explorer uses of hyparquet; build.sh bundles this into hyparquet.bundle.js.
export { parquetMetadata, parquetReadObjects } from "hyparquet"
export { compressors } from "hyparquet-compressors"
