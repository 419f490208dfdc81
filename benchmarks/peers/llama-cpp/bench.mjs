// llama.cpp speed on a GGUF file and a fixed list of prompt token ids, through node-llama-cpp's
// prebuilt CPU binary (no build, no download). Writes one JSON object on stdout; logs go to stderr.
//
//   node bench.mjs --model FILE.gguf --tokens FILE [--threads N] [--kv f16] [--decode N]
//                  [--flash-attention on|off|auto] [--batch N] [--reps N] [--check N [--expect FILE]]
//
// --tokens: a text file of whitespace-separated token ids (BOS included when wanted); they are fed
// to llama_decode as they are, llama.cpp's tokenizer is not used.
//
// What is timed, per repetition, on a fresh context (context size >= prompt + decode + 1):
//   prefill: the prompt fed in batches of --batch tokens (one llama_decode per batch, logits only for
//            the last token), then greedy sampling of the first new token;
//   decode:  --decode steps of one llama_decode of one token followed by greedy sampling of the next.
// Every llama_decode goes through the binding's lowest-level calls (AddonContext initBatch /
// addToBatch / decodeBatch / sampleToken), one call per batch, with none of the higher-level
// scheduler, token meter or generator in between. Two clocks are reported:
//   wall:     performance.now() around the phase, binding round trips included;
//   llama.cpp: llama.cpp's own llama_perf_context counters for the phase ("prompt eval time" for the
//            prefill batches, "eval time" for the one-token decodes), read from its timing print,
//            which excludes the binding and sampling.
// Before the repetitions, an untimed pass on a throwaway context warms llama.cpp up: with --check N,
// the whole prompt and N greedy tokens (returned as "check"; with --expect FILE, a file of token ids,
// they are compared with it and, if they differ, nothing is timed and "mismatch" says where);
// without --check, the first batch of the prompt and 4 decode steps.
import {readFileSync} from "node:fs";
import {dirname, join} from "node:path";
import {fileURLToPath} from "node:url";
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

const here = dirname(fileURLToPath(import.meta.url));

function parseArgs(argv) {
    const o = {threads: 2, kv: "f16", decode: 32, flashAttention: "off", batch: 512, reps: 1, check: 0};
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const v = () => {
            if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
            return argv[++i];
        };
        switch (a) {
            case "--model": o.model = v(); break;
            case "--tokens": o.tokens = v(); break;
            case "--threads": o.threads = positive(a, v()); break;
            case "--kv": o.kv = v().toLowerCase(); break;
            case "--decode": o.decode = positive(a, v()); break;
            case "--flash-attention": o.flashAttention = v(); break;
            case "--batch": o.batch = positive(a, v()); break;
            case "--reps": o.reps = positive(a, v()); break;
            case "--check": o.check = positive(a, v()); break;
            case "--expect": o.expect = v(); break;
            default: throw new Error(`unknown option ${a}`);
        }
    }
    if (!o.model || !o.tokens) throw new Error("--model FILE and --tokens FILE are required");
    if (o.expect && !o.check) throw new Error("--expect needs --check N");
    if (!["on", "off", "auto"].includes(o.flashAttention))
        throw new Error(`--flash-attention must be on, off or auto, was ${o.flashAttention}`);
    return o;
}

function positive(name, s) {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, was ${s}`);
    return n;
}

const KV_TYPES = {f32: "F32", f16: "F16", bf16: "BF16", q8_0: "Q8_0"};
const GGML_TYPE_IDS = {F32: 0, F16: 1, Q8_0: 8, BF16: 30};

const o = parseArgs(process.argv.slice(2));
function readTokens(file) {
    const ids = readFileSync(file, "utf8").trim().split(/\s+/).map(Number);
    if (ids.length === 0 || ids.some((t) => !Number.isInteger(t) || t < 0))
        throw new Error(`${file}: expected whitespace-separated non-negative token ids`);
    return ids;
}
const prompt = readTokens(o.tokens);
const kvType = KV_TYPES[o.kv];
if (kvType == null) throw new Error(`--kv must be one of ${Object.keys(KV_TYPES).join(", ")}, was ${o.kv}`);

// llama.cpp's log lines arrive through this logger; the timing prints are parsed from them.
const logLines = [];
const llama = await getLlama({
    gpu: false,
    build: "never",
    skipDownload: true,
    maxThreads: 0, // every context uses exactly the threads it asks for
    logLevel: LlamaLogLevel.info,
    logger: (level, message) => {
        logLines.push(message);
        if (level === LlamaLogLevel.error || level === LlamaLogLevel.fatal) process.stderr.write(message + "\n");
    }
});
const model = await llama.loadModel({modelPath: o.model, gpuLayers: 0});

async function newContext(contextSize) {
    const ctx = await model.createContext({
        contextSize,
        batchSize: Math.min(o.batch, contextSize),
        threads: o.threads,
        flashAttention: o.flashAttention === "auto" ? "auto" : o.flashAttention === "on",
        experimentalKvCacheKeyType: kvType,
        experimentalKvCacheValueType: kvType,
        performanceTracking: true,
        ignoreMemorySafetyChecks: true
    });
    if (ctx.kvCacheKeyType !== GGML_TYPE_IDS[kvType] || ctx.kvCacheValueType !== GGML_TYPE_IDS[kvType])
        throw new Error(`context KV types are ${ctx.kvCacheKeyType}/${ctx.kvCacheValueType}, asked for ${kvType}`);
    const seq = ctx.getSequence();
    const addon = ctx._ctx;
    if (addon.getThreads() !== o.threads)
        throw new Error(`context runs ${addon.getThreads()} threads, asked for ${o.threads}`);
    const sampler = new llama._bindings.AddonSampler(model._model);
    sampler.applyConfig({temperature: 0}); // greedy
    return {ctx, seq, addon, sampler, sid: seq._sequenceId};
}

/** Prints llama.cpp's timings (which also resets its counters) and returns the parsed lines. */
async function readTimings(c) {
    logLines.length = 0;
    c.addon.printTimings();
    for (let i = 0; i < 100 && !logLines.some((l) => l.includes("total time")); i++)
        await new Promise((r) => setTimeout(r, 5));
    const grab = (re) => {
        for (const l of logLines) {
            const m = l.match(re);
            if (m) return {ms: Number(m[1]), tokens: Number(m[2])};
        }
        return null;
    };
    return {
        prompt: grab(/prompt eval time =\s*([\d.]+) ms \/\s*(\d+) tokens/),
        eval: grab(/\beval time =\s*([\d.]+) ms \/\s*(\d+) runs/)
    };
}

async function prefill(c, tokens) {
    let li = null;
    for (let pos = 0; pos < tokens.length; pos += o.batch) {
        const chunk = tokens.slice(pos, pos + o.batch);
        const last = pos + chunk.length === tokens.length;
        c.addon.initBatch(chunk.length);
        li = c.addon.addToBatch(c.sid, pos, Uint32Array.from(chunk), last ? Uint32Array.of(chunk.length - 1) : new Uint32Array(0));
        await c.addon.decodeBatch();
    }
    return await c.addon.sampleToken(li[0], c.sampler);
}

async function decode(c, first, position, steps, out) {
    let next = first;
    for (let i = 0; i < steps; i++) {
        c.addon.initBatch(1);
        const li = c.addon.addToBatch(c.sid, position + i, Uint32Array.of(next), Uint32Array.of(0));
        await c.addon.decodeBatch();
        next = await c.addon.sampleToken(li[0], c.sampler);
        out?.push(next);
    }
    return next;
}

// Untimed pass: pages the weights in, lets llama.cpp pick its kernels and allocate its buffers, and
// with --check produces the greedy tokens to compare.
let check = null;
let mismatch = null;
if (o.check > 0) {
    const c = await newContext(prompt.length + o.check + 1);
    check = [await prefill(c, prompt)];
    await decode(c, check[0], prompt.length, o.check - 1, check);
    await c.ctx.dispose();
    if (o.expect) {
        const want = readTokens(o.expect).slice(0, o.check);
        for (let i = 0; i < o.check && mismatch == null; i++)
            if (want[i] !== check[i]) mismatch = {index: i, expected: want[i] ?? null, actual: check[i]};
    }
} else {
    const warm = prompt.slice(0, Math.min(prompt.length, o.batch));
    const c = await newContext(warm.length + 8);
    const t = await prefill(c, warm);
    await decode(c, t, warm.length, 4, null);
    await c.ctx.dispose();
}

const reps = [];
let generated = null;
let contextSize = 0;
for (let r = 0; r < (mismatch == null ? o.reps : 0); r++) {
    const c = await newContext(prompt.length + o.decode + 1);
    contextSize = c.ctx.contextSize;
    await readTimings(c); // reset
    const t0 = performance.now();
    const first = await prefill(c, prompt);
    const t1 = performance.now();
    const pre = await readTimings(c);
    const gen = [first];
    const t2 = performance.now();
    await decode(c, first, prompt.length, o.decode, gen);
    const t3 = performance.now();
    const dec = await readTimings(c);
    if (generated == null) generated = gen;
    reps.push({
        prefillWallMs: t1 - t0,
        // llama.cpp books one-token batches under "eval": a prompt whose last batch is one token long.
        prefillLlamaCppMs: pre.prompt == null && pre.eval == null ? null : (pre.prompt?.ms ?? 0) + (pre.eval?.ms ?? 0),
        prefillLlamaCppTokens: (pre.prompt?.tokens ?? 0) + (pre.eval?.tokens ?? 0),
        decodeWallMs: t3 - t2,
        decodeLlamaCppMs: dec.eval?.ms ?? null,
        decodeLlamaCppRuns: dec.eval?.tokens ?? null
    });
    await c.ctx.dispose();
}

const best = (xs) => xs.filter((x) => x != null).reduce((m, x) => Math.min(m, x), Infinity);
const rate = (n, ms) => (Number.isFinite(ms) && ms > 0 ? n / (ms / 1000) : null);
const info = JSON.parse(readFileSync(join(here, "node_modules/node-llama-cpp/llama/llama.cpp.info.json"), "utf8"));
const pkg = JSON.parse(readFileSync(join(here, "node_modules/node-llama-cpp/package.json"), "utf8"));
const result = {
    engine: "llama.cpp",
    binding: `node-llama-cpp ${pkg.version}`,
    llamaCpp: `${info.llamaCppGithubRepo} ${info.tag}`,
    cpuFeatures: llama.systemInfo.trim(),
    model: o.model,
    threads: o.threads,
    kvType,
    flashAttention: o.flashAttention,
    batch: o.batch,
    contextSize,
    promptTokens: prompt.length,
    decodeTokens: o.decode,
    reps: o.reps,
    method: "prefill: prompt in batches of " + o.batch + " tokens, one llama_decode each, then greedy sampling; "
        + "decode: " + o.decode + " single-token llama_decode calls each followed by greedy sampling; "
        + "calls issued directly through node-llama-cpp's AddonContext (initBatch/addToBatch/decodeBatch/sampleToken); "
        + "wall = performance.now() around the phase, llamaCpp = llama.cpp's llama_perf_context counters for the phase; "
        + "best of " + o.reps + " repetition(s), each on a fresh context, after an untimed warm-up",
    prefillTokensPerSecondWall: rate(prompt.length, best(reps.map((r) => r.prefillWallMs))),
    prefillTokensPerSecondLlamaCpp: rate(prompt.length, best(reps.map((r) => r.prefillLlamaCppMs))),
    decodeTokensPerSecondWall: rate(o.decode, best(reps.map((r) => r.decodeWallMs))),
    decodeTokensPerSecondLlamaCpp: rate(o.decode, best(reps.map((r) => r.decodeLlamaCppMs))),
    check,
    mismatch,
    repetitions: reps,
    generated
};
await model.dispose();
await llama.dispose();
process.stdout.write(JSON.stringify(result) + "\n");
