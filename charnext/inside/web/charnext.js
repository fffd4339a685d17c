/* charnext.js: a charnext model in the browser. The forward pass of an RNN, GRU or LSTM with its
 * state carried, the next-character sampler and its random generator, in plain JavaScript with
 * nothing to install; `charnext page` inlines this file into the page it writes.
 *
 * The weights are those of charnext's numpy engine (charnext/modeling/numpy_model.py), folded the same
 * way before they are written, so that this file only looks up, multiplies and adds:
 *   - the first layer's input (embedding or one-hot, times the input weights, plus the biases)
 *     is one (vocab, gates) table: reading a character is one row of it;
 *   - the sigmoid gates' weights are halved, so that sigmoid(x) = (1 + tanh(x / 2)) / 2 is one
 *     tanh; the LSTM's gates are in the order i, f, o, g; the GRU's r, z, n.
 *
 * The weights' format (what `charnext page` embeds; reuse them in a page of your own):
 *   spec = { cell: "rnn" | "gru" | "lstm", hidden_size, num_layers, vocab: [characters],
 *            dtype: "float16" | "float32",
 *            arrays: { name: [offset, rows, cols] } }   offset counted in elements
 *   bytes: every array one after the other, little-endian, row-major, in `dtype`. The names:
 *     l0.table (vocab, gates)                 the first layer's input, biases included
 *     lK.w_ih (hidden, gates), lK.b_in (1, gates)   a later layer's input weights and biases
 *     lK.w_hh (hidden, gates)                 every layer's recurrent weights
 *     lK.b_hn (1, hidden)                     a GRU's recurrent bias of n (it sits inside r * ...)
 *     head.w (hidden, vocab), head.b (1, vocab)
 *   where gates = hidden x 1 (rnn), 3 (gru) or 4 (lstm).
 *
 *   const model = await charnext.CharModel.load(spec, bytes);     // bytes: a Uint8Array
 *   const state = model.initialState();
 *   const logits = model.step(model.vocab.indexOf("h"), state);  // state is updated in place
 *   const probs = charnext.softmax(logits);
 *
 * The matrix products run in WebAssembly SIMD when `load` is given the kernel's bytes (built
 * from kernel.wat beside this file) and the browser allows it; else in plain JavaScript. The
 * two give the same probabilities to about 1e-6.
 */
(function (root) {
  "use strict";

  const GATES = { rnn: 1, gru: 3, lstm: 4 };

  // tanh through one exp: about twice as fast as Math.tanh in V8, and in double precision
  // within 1e-16 of it (what the page compares is float32 arithmetic, to 1e-5)
  function tanh(x) {
    return 1 - 2 / (Math.exp(2 * x) + 1);
  }

  // a sigmoid gate, its weights halved when folded: (1 + tanh(x)) / 2 = 1 / (1 + exp(-2x))
  function sigmoidOfHalf(x) {
    return 1 / (1 + Math.exp(-2 * x));
  }

  // ------------------------------------------------------------------------------------------
  // reading the weights

  /** Float16 bits -> float32, as a 65,536-entry table (built once, the first time it is needed). */
  let halfTable = null;
  function halfToFloat() {
    if (halfTable) return halfTable;
    halfTable = new Float32Array(65536);
    for (let bits = 0; bits < 65536; bits++) {
      const sign = bits & 0x8000 ? -1 : 1;
      const exponent = (bits >> 10) & 0x1f;
      const fraction = bits & 0x3ff;
      let value;
      if (exponent === 0) value = fraction * 2 ** -24; // subnormal
      else if (exponent === 31) value = fraction ? NaN : Infinity;
      else value = (1 + fraction / 1024) * 2 ** (exponent - 15);
      halfTable[bits] = sign * value;
    }
    return halfTable;
  }

  /** The spec's arrays out of the bytes, each a Float32Array (rows x cols, row-major). */
  function readArrays(spec, bytes) {
    const n = bytes.byteLength / (spec.dtype === "float16" ? 2 : 4);
    let all;
    if (spec.dtype === "float16") {
      const half = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
      const table = halfToFloat();
      all = new Float32Array(n);
      for (let i = 0; i < n; i++) all[i] = table[half[i]];
    } else if (spec.dtype === "float32") {
      all = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    } else {
      throw new Error("unknown dtype " + spec.dtype);
    }
    const arrays = {};
    for (const [name, [offset, rows, cols]] of Object.entries(spec.arrays)) {
      arrays[name] = { data: all.subarray(offset, offset + rows * cols), rows: rows, cols: cols };
    }
    return arrays;
  }

  // ------------------------------------------------------------------------------------------
  // kernels: y (cols) += x (rows) . W (rows x cols), one call per matrix and step

  /** Plain JavaScript: W kept transposed, so that each output is one dot product over a
   * contiguous row, summed in double precision. */
  function jsKernel() {
    return {
      name: "JavaScript",
      matrix(w) {
        const t = new Float32Array(w.rows * w.cols);
        for (let i = 0; i < w.rows; i++) {
          for (let j = 0; j < w.cols; j++) t[j * w.rows + i] = w.data[i * w.cols + j];
        }
        return { t: t, rows: w.rows, cols: w.cols };
      },
      addMatVec(m, x, y) {
        const t = m.t, rows = m.rows;
        for (let j = 0; j < m.cols; j++) {
          const o = j * rows;
          let s0 = 0, s1 = 0, s2 = 0, s3 = 0, i = 0;
          for (; i + 3 < rows; i += 4) {
            s0 += t[o + i] * x[i];
            s1 += t[o + i + 1] * x[i + 1];
            s2 += t[o + i + 2] * x[i + 2];
            s3 += t[o + i + 3] * x[i + 3];
          }
          for (; i < rows; i++) s0 += t[o + i] * x[i];
          y[j] += s0 + s1 + s2 + s3;
        }
      },
    };
  }

  const PANEL = 16; // columns per panel of the WebAssembly kernel: four 4-float vectors

  /** WebAssembly SIMD (kernel.wat): W cut into panels of 16 columns, each panel's rows one
   * after the other, so the kernel reads memory in order; x and y pass through two buffers. */
  function wasmKernel(instance, maxRows, maxCols) {
    const exports = instance.exports;
    const memory = exports.memory;
    let top = 0; // bytes in use: a bump allocator, nothing is ever freed
    function alloc(floats) {
      const at = top;
      top += Math.ceil(floats / PANEL) * PANEL * 4; // keep 64-byte alignment
      const need = Math.ceil(top / 65536) - memory.buffer.byteLength / 65536;
      if (need > 0) memory.grow(need);
      return at;
    }
    const xAt = alloc(maxRows);
    const yAt = alloc(Math.ceil(maxCols / PANEL) * PANEL);
    let f32 = new Float32Array(memory.buffer);
    const view = () => (f32.length ? f32 : (f32 = new Float32Array(memory.buffer))); // after a grow
    return {
      name: "WebAssembly SIMD",
      matrix(w) {
        const panels = Math.ceil(w.cols / PANEL);
        const at = alloc(panels * w.rows * PANEL);
        const mem = view();
        const base = at / 4;
        for (let p = 0; p < panels; p++) {
          for (let i = 0; i < w.rows; i++) {
            for (let k = 0; k < PANEL; k++) {
              const j = p * PANEL + k;
              mem[base + (p * w.rows + i) * PANEL + k] = j < w.cols ? w.data[i * w.cols + j] : 0;
            }
          }
        }
        return { at: at, rows: w.rows, cols: w.cols, panels: panels };
      },
      addMatVec(m, x, y) {
        const mem = view();
        mem.set(x.subarray(0, m.rows), xAt / 4);
        mem.set(y.subarray(0, m.cols), yAt / 4);
        exports.matvec(yAt, xAt, m.at, m.rows, m.panels);
        y.set(mem.subarray(yAt / 4, yAt / 4 + m.cols));
      },
    };
  }

  /** The WebAssembly kernel from its bytes, or null where the browser refuses it (no SIMD, or
   * a Content-Security-Policy without 'wasm-unsafe-eval'). */
  async function loadWasmKernel(wasmBytes, maxRows, maxCols) {
    if (!wasmBytes || typeof WebAssembly === "undefined" || !WebAssembly.validate(wasmBytes)) return null;
    try {
      const { instance } = await WebAssembly.instantiate(wasmBytes);
      return wasmKernel(instance, maxRows, maxCols);
    } catch (e) {
      return null;
    }
  }

  // ------------------------------------------------------------------------------------------
  // the model

  /** A character model: `step(idx, state)` reads one character and gives the next one's logits. */
  class CharModel {
    /** `arrays` as readArrays gives them; `kernel` a jsKernel() or wasmKernel(). */
    constructor(spec, arrays, kernel) {
      this.spec = spec;
      this.cell = spec.cell;
      if (!(this.cell in GATES)) throw new Error("unknown cell " + this.cell);
      this.vocab = spec.vocab;
      this.hiddenSize = spec.hidden_size;
      this.numLayers = spec.num_layers;
      this.kernel = kernel || jsKernel();
      const H = this.hiddenSize;
      this.stateSize = this.cell === "lstm" ? 2 * H : H; // an LSTM's state is (h, c)
      this.layers = [];
      for (let l = 0; l < this.numLayers; l++) {
        const a = (name) => arrays["l" + l + "." + name];
        this.layers.push({
          table: l === 0 ? a("table").data : null, // (V, gates)
          w_ih: l === 0 ? null : this.kernel.matrix(a("w_ih")),
          b_in: l === 0 ? null : a("b_in").data,
          w_hh: this.kernel.matrix(a("w_hh")),
          b_hn: this.cell === "gru" ? a("b_hn").data : null,
        });
      }
      this.headW = this.kernel.matrix(arrays["head.w"]);
      this.headB = arrays["head.b"].data;
      const G = GATES[this.cell] * H;
      this.gx = new Float32Array(G); // what the input adds to the gates
      this.gh = new Float32Array(G); // what the state adds (the GRU keeps them apart)
      this.logits = new Float32Array(this.vocab.length);
    }

    /** A model from the spec and its bytes; the WebAssembly kernel where `wasmBytes` is given
     * and the browser runs it. */
    static async load(spec, bytes, wasmBytes) {
      const arrays = readArrays(spec, bytes);
      const H = spec.hidden_size;
      const maxCols = Math.max(GATES[spec.cell] * H, spec.vocab.length);
      const kernel = (await loadWasmKernel(wasmBytes, H, maxCols)) || jsKernel();
      return new CharModel(spec, arrays, kernel);
    }

    /** The zero state: (num_layers x stateSize), each layer's h first (then an LSTM's c). */
    initialState() {
      return new Float32Array(this.numLayers * this.stateSize);
    }

    /** Read character `idx` with `state` (updated in place); the next character's logits
     * (a Float32Array the next call overwrites). */
    step(idx, state) {
      const H = this.hiddenSize, S = this.stateSize, G = this.gx.length;
      const gx = this.gx, gh = this.gh, k = this.kernel;
      let x = null; // the layer's input: the previous layer's new h
      for (let l = 0; l < this.numLayers; l++) {
        const layer = this.layers[l];
        const h = state.subarray(l * S, l * S + H);
        if (l === 0) {
          gx.set(layer.table.subarray(idx * G, idx * G + G));
        } else {
          gx.set(layer.b_in);
          k.addMatVec(layer.w_ih, x, gx);
        }
        if (this.cell === "lstm") {
          const c = state.subarray(l * S + H, l * S + 2 * H);
          k.addMatVec(layer.w_hh, h, gx); // gx now holds every gate's input: i f o g
          for (let j = 0; j < H; j++) {
            const i = sigmoidOfHalf(gx[j]);
            const f = sigmoidOfHalf(gx[H + j]);
            const o = sigmoidOfHalf(gx[2 * H + j]);
            const cj = f * c[j] + i * tanh(gx[3 * H + j]);
            c[j] = cj;
            h[j] = o * tanh(cj);
          }
        } else if (this.cell === "gru") {
          gh.set(layer.b_hn, 2 * H); // r and z start at 0, n at its bias b_hn
          gh.fill(0, 0, 2 * H);
          k.addMatVec(layer.w_hh, h, gh);
          for (let j = 0; j < H; j++) {
            const r = sigmoidOfHalf(gx[j] + gh[j]);
            const z = sigmoidOfHalf(gx[H + j] + gh[H + j]);
            const n = tanh(gx[2 * H + j] + r * gh[2 * H + j]);
            h[j] = (h[j] - n) * z + n; // (1 - z) * n + z * h
          }
        } else {
          k.addMatVec(layer.w_hh, h, gx);
          for (let j = 0; j < H; j++) h[j] = tanh(gx[j]);
        }
        x = h;
      }
      this.logits.set(this.headB);
      k.addMatVec(this.headW, x, this.logits);
      return this.logits;
    }
  }

  // ------------------------------------------------------------------------------------------
  // probabilities and the choice of the next character (charnext/inference/sampling.py, step for step)

  /** Probabilities (float64) of logits. */
  function softmax(logits) {
    let max = -Infinity;
    for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
    const p = new Float64Array(logits.length);
    let sum = 0;
    for (let i = 0; i < logits.length; i++) sum += p[i] = Math.exp(logits[i] - max);
    for (let i = 0; i < p.length; i++) p[i] /= sum;
    return p;
  }

  /** The k most likely [index, probability] pairs, best first (ties: the lower index). */
  function topK(probs, k) {
    const order = Array.from(probs.keys()).sort((a, b) => probs[b] - probs[a] || a - b);
    return order.slice(0, k).map((i) => [i, probs[i]]);
  }

  /** PCG32 (charnext/inference/pcg32.py): the same numbers for the same seed and stream as `charnext
   * predict`. 64-bit state in BigInt; one draw per generated character. */
  class Pcg32 {
    constructor(seed, stream = 0) {
      this.inc = BigInt.asUintN(64, (BigInt(stream) << 1n) | 1n);
      this.state = 0n;
      this.step();
      this.state = BigInt.asUintN(64, this.state + BigInt.asUintN(64, BigInt(seed)));
      this.step();
    }

    step() {
      this.state = BigInt.asUintN(64, this.state * 6364136223846793005n + this.inc);
    }

    /** The next 32-bit output. */
    nextU32() {
      const old = this.state;
      this.step();
      const x = Number(BigInt.asUintN(32, ((old >> 18n) ^ old) >> 27n));
      const rot = Number(old >> 59n);
      return ((x >>> rot) | (x << ((32 - rot) & 31))) >>> 0;
    }

    /** Uniform in [0, 1). */
    random() {
      return this.nextU32() / 4294967296;
    }
  }

  /** The next character's index from logits: greedy at temperature 0, else one draw from
   * `rng` over the distribution at that temperature, cut to the top k and the top-p mass. */
  function choose(logits, sample, rng) {
    const V = logits.length;
    if (sample.temperature === 0) {
      let best = 0;
      for (let i = 1; i < V; i++) if (logits[i] > logits[best]) best = i;
      return best;
    }
    const z = new Float64Array(V);
    const inv = 1 / sample.temperature;
    for (let i = 0; i < V; i++) z[i] = logits[i] * inv;
    if (sample.topK && sample.topK < V) {
      const kth = Float64Array.from(z).sort()[V - sample.topK]; // the k-th largest: ties stay
      for (let i = 0; i < V; i++) if (z[i] < kth) z[i] = -Infinity;
    }
    let max = -Infinity;
    for (let i = 0; i < V; i++) if (z[i] > max) max = z[i];
    const p = new Float64Array(V);
    for (let i = 0; i < V; i++) p[i] = Math.exp(z[i] - max); // unnormalised
    if (sample.topP < 1) {
      let sum = 0;
      for (let i = 0; i < V; i++) sum += p[i];
      for (let i = 0; i < V; i++) p[i] /= sum;
      // keep the smallest set whose mass reaches top_p (the first character always stays)
      const order = Array.from(p.keys()).sort((a, b) => p[b] - p[a] || a - b);
      let before = 0;
      for (const i of order) {
        const q = p[i];
        if (before >= sample.topP) p[i] = 0;
        before += q;
      }
    }
    const cdf = new Float64Array(V);
    let total = 0;
    for (let i = 0; i < V; i++) cdf[i] = total += p[i];
    const u = rng.random() * total; // uniform in [0, total)
    let chosen = 0;
    while (chosen < V && cdf[chosen] <= u) chosen++;
    if (chosen >= V) { // u rounded up to the total: the last possible character
      chosen = V - 1;
      while (chosen > 0 && !(p[chosen] > 0)) chosen--;
    }
    return chosen;
  }

  /** Read `prefix` (indices) from the zero state, as charnext's `generate` does for one sample:
   * in line mode (a `stop` index) after the stop character, else after the model's `prime`
   * (indices: the checkpoint's start). The state, and the last logits (all zero, a uniform
   * first character, when there is nothing to read). */
  function readPrefix(model, prefix, stop = -1, prime = []) {
    const start = stop >= 0 ? (prefix[0] !== stop ? [stop].concat(prefix) : prefix) : prime.concat(prefix);
    const state = model.initialState();
    let logits = new Float32Array(model.vocab.length);
    for (const idx of start) logits = model.step(idx, state);
    return { state: state, logits: Float32Array.from(logits) };
  }

  /** Yield `length` characters (indices) continuing from `state` (updated in place) and the
   * logits it gave: one draw from `rng` each (a Pcg32; sample i of predict draws from stream
   * i); in line mode generation ends at the `stop` character, which is yielded. */
  function* continueFrom(model, state, logits, length, sample, rng, stop = -1) {
    for (let n = 0; n < length; n++) {
      const next = choose(logits, sample, rng);
      yield next;
      if (next === stop || n === length - 1) return;
      logits = model.step(next, state);
    }
  }

  /** Yield `length` characters continuing `prefix` (indices), as `charnext predict` does. */
  function* generate(model, prefix, length, sample, rng, stop = -1, prime = []) {
    const start = readPrefix(model, prefix, stop, prime);
    yield* continueFrom(model, start.state, start.logits, length, sample, rng, stop);
  }

  const api = { CharModel, Pcg32, choose, continueFrom, generate, jsKernel, readArrays, readPrefix, softmax, topK };
  root.charnext = api;
  if (typeof module !== "undefined" && module.exports) module.exports = api;
})(typeof globalThis !== "undefined" ? globalThis : this);
