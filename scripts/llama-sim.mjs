// One greedy generation with node-llama-cpp's own API; scripts/llama-sim runs it (see there).
//
//   node scripts/llama-sim.mjs NODE_MODULES MODEL cpu|cuda PROMPT TOKENS
//
// Prints one JSON line: the prompt's tokens, the generated tokens, the seconds the prompt took and
// the seconds of each generated token after the first (decode speed). "cpu" loads node-llama-cpp's
// CPU-only build with no GPU layers (the oracle); "cuda" its CUDA build with every layer offloaded.
import path from "node:path";
import {pathToFileURL} from "node:url";

const [modules, modelPath, mode, prompt, count] = process.argv.slice(2);
const {getLlama, LlamaLogLevel} = await import(
    pathToFileURL(path.join(modules, "node-llama-cpp", "dist", "index.js")).href);

const llama = await getLlama({
    gpu: mode === "cuda" ? "cuda" : false,
    build: "never",
    usePrebuiltBinaries: true,
    skipDownload: true,
    progressLogs: false,
    logLevel: LlamaLogLevel.warn,
    vramPadding: 0,
    maxThreads: 2,
});
if (mode === "cuda" && llama.gpu !== "cuda") {
    throw new Error(`node-llama-cpp did not load its CUDA build (gpu: ${llama.gpu})`);
}
const model = await llama.loadModel({
    modelPath,
    gpuLayers: mode === "cuda" ? "max" : 0,
    useMmap: false,
});
const context = await model.createContext({contextSize: 256, batchSize: 64, threads: 2, flashAttention: false});
const sequence = context.getSequence();
const input = model.tokenize(prompt);
const out = [];
const stamps = [];
const start = performance.now();
for await (const token of sequence.evaluate(input, {temperature: 0})) {
    out.push(token);
    stamps.push(performance.now());
    if (out.length >= Number(count)) break;
}
const decode = stamps.length > 1 ? (stamps[stamps.length - 1] - stamps[0]) / 1000 : 0;
console.log(JSON.stringify({
    mode,
    gpu: llama.gpu,
    prompt: input,
    tokens: out,
    prompt_seconds: (stamps[0] - start) / 1000,
    decode_seconds: decode,
    decode_tokens: out.length - 1,
}));
await context.dispose();
await model.dispose();
await llama.dispose();
