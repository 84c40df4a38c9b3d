// Read the first frame of datasets with h5wasm (the HDF5 library under H5Web), as
// benchmarks/bench_compression.py asks: node h5wasm_read.mjs FILE DATASET...
import h5wasm from "h5wasm/node";
await h5wasm.ready;
const [file, ...paths] = process.argv.slice(2);
const f = new h5wasm.File(file, "r");
for (const p of paths) {
  try {
    const values = f.get(p).slice([[0, 1]]);
    let finite = 0, sum = 0;
    for (const x of values) { if (Number.isFinite(x)) { finite++; sum += x; } }
    console.log(JSON.stringify({path: p, ok: true, finite, sum}));
  } catch (e) {
    console.log(JSON.stringify({path: p, ok: false, error: String(e).split("\n")[0]}));
  }
}
f.close();
