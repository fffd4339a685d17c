/* The page `charnext page` writes: type and see the next-character bars, the per-step table,
 * generation and the model card. The model itself is charnext.js (inlined before this file);
 * its weights and settings are in the page's two data blocks, #spec (JSON) and #weights (base64).
 */
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const spec = JSON.parse($("spec").textContent);
  const vocab = spec.vocab; // characters, in index order
  const shown = spec.visible; // each as a table shows it: ␣ a space, ↵ a newline, \t ...
  const indexOf = new Map(vocab.map((ch, i) => [ch, i]));
  const NL = indexOf.has("\n") ? indexOf.get("\n") : -1;
  const lineMode = spec.line_mode && NL >= 0; // each line read from the zero state after a newline
  // a stream model reads its prime (the checkpoint's start: e.g. a blank line) from the zero state
  // before the text, as predict does; a line model's start is its newline
  const prime = lineMode ? [] : Array.from(spec.prime || "", (ch) => indexOf.get(ch));
  const BARS = 8; // most likely next characters shown as bars
  const ALTERNATIVES = 3; // shown per row of the table
  const ROWS = 40; // rows of the table: its last steps
  const SNAPSHOT = 32; // a copy of the state every this many characters, to go back to
  const LINE_CAP = 400; // characters at most per generated line (predict's --length in line mode)

  function bytesOf(base64) {
    if (Uint8Array.fromBase64) return Uint8Array.fromBase64(base64);
    const bin = atob(base64);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  // ------------------------------------------------------------------------------------------
  // the typed text, read one character at a time

  /** What the model has read of the text: its state, and after every position the next
   * character's probabilities. Position t has read text[0..t); at 0 a stream model has read
   * nothing (no prediction) and a line model a newline from the zero state. */
  class Reader {
    constructor(model) {
      this.model = model;
      this.text = []; // indices read
      this.probs = []; // probs[t]: Float32Array (V), or null before a stream's first character
      this.logits = null; // the logits at the last position (null before a stream's first character)
      this.snapshots = []; // snapshots[k]: the state at position k * SNAPSHOT
      this.state = model.initialState();
      this.probs.push(this.begin());
      this.snapshots.push(this.state.slice());
    }

    /** The start: a line's newline (line mode) or the prime, read from the zero state; the
     * probabilities after it (null: a stream with no prime predicts nothing yet). */
    begin() {
      if (lineMode) return this.restart();
      this.state.fill(0);
      let probs = null;
      for (const idx of prime) probs = this.read(idx);
      return probs;
    }

    /** The zero state, then a newline read (line mode): a line's start, as in training. */
    restart() {
      this.state.fill(0);
      return this.read(NL);
    }

    /** One step of the model: the next character's probabilities (and keep its logits). */
    read(idx) {
      this.logits = Float32Array.from(this.model.step(idx, this.state));
      return Float32Array.from(charnext.softmax(this.logits));
    }

    /** Read one more character. */
    feed(idx) {
      const probs = lineMode && idx === NL ? this.restart() : this.read(idx);
      this.text.push(idx);
      this.probs.push(probs);
      if (this.text.length % SNAPSHOT === 0) this.snapshots[this.text.length / SNAPSHOT] = this.state.slice();
    }

    /** Go back to position `t` (at most the text's length): from the snapshot before it,
     * reading at least one character again (for its logits), or from the start. */
    rewind(t) {
      const k = Math.floor(Math.max(t - 1, 0) / SNAPSHOT);
      const again = this.text.slice(k * SNAPSHOT, t);
      this.snapshots.length = k + 1;
      this.state.set(this.snapshots[k]);
      this.text.length = k * SNAPSHOT;
      this.probs.length = k * SNAPSHOT + 1;
      if (t === 0) {
        this.logits = null;
        this.probs[0] = this.begin(); // the start read again (a line model's newline, a prime)
      }
      for (const idx of again) this.feed(idx);
    }

    /** Where generation continues from: a copy of the state and the last logits (zeros, a
     * uniform first character, before a stream's first character), as predict reads it. */
    start() {
      const logits = this.logits ? this.logits.slice() : new Float32Array(this.model.vocab.length);
      return { state: this.state.slice(), logits: logits };
    }
  }

  // ------------------------------------------------------------------------------------------
  // the page

  const page = { spec: spec, reader: null, model: null, readyAt: null };
  window.charnextPage = page; // for the tests, and for anyone curious in the console

  const text = $("text");
  let target = []; // what the text box holds, as indices: the reader catches up with it
  let pumping = false;
  let leaveOnTab = false; // Escape, then Tab: the focus moves on instead of accepting

  function indicesOf(value) {
    const out = [];
    for (const ch of value) if (indexOf.has(ch)) out.push(indexOf.get(ch));
    return out;
  }

  // every character left out since the box was last emptied: the message names them all until
  // then, so that the next key typed does not wipe it before it is read (an "E" in "Emma")
  const leftOut = new Set();

  /** Drop characters the model does not know from the text box, and say which. */
  function keepKnown() {
    const value = text.value;
    let kept = "", caret = text.selectionStart, before = 0, dropped = false;
    if (!value) leftOut.clear();
    for (const ch of value) {
      if (indexOf.has(ch)) kept += ch;
      else {
        leftOut.add(ch);
        dropped = true;
        if (before < caret) caret -= ch.length;
      }
      before += ch.length;
    }
    if (dropped) {
      text.value = kept;
      text.setSelectionRange(caret, caret);
    }
    $("message").textContent = leftOut.size ? leftOutMessage() : "";
    return kept;
  }

  /** `Not in the model's vocabulary, left out: "E" "@" (it knows "e")`. */
  function leftOutMessage() {
    const list = Array.from(leftOut).map((c) => JSON.stringify(c)).join(" ");
    const knows = []; // the other case of a letter left out, where the model has that one
    for (const c of leftOut) {
      const other = c.toLowerCase() !== c ? c.toLowerCase() : c.toUpperCase();
      if (other !== c && indexOf.has(other)) knows.push(JSON.stringify(other));
    }
    const hint = knows.length ? ` (it knows ${knows.join(" ")})` : "";
    return `Not in the model's vocabulary, left out: ${list}${hint}`;
  }

  function onInput() {
    target = indicesOf(keepKnown());
    pump();
  }

  /** Bring the reader to `target`, in slices of about 30 ms so that typing stays smooth. */
  function pump() {
    if (pumping) return;
    pumping = true;
    const reader = page.reader;
    const t0 = performance.now();
    let same = 0;
    while (same < reader.text.length && same < target.length && reader.text[same] === target[same]) same++;
    if (same < reader.text.length) reader.rewind(same);
    while (reader.text.length < target.length && performance.now() - t0 < 30) {
      reader.feed(target[reader.text.length]);
    }
    const done = reader.text.length === target.length;
    document.body.dataset.busy = done ? "" : "1";
    if (done) showPredictions();
    else $("bars-note").textContent = `reading… ${reader.text.length.toLocaleString()} of ${target.length.toLocaleString()}`;
    pumping = false;
    if (!done) setTimeout(pump, 0);
  }

  function pct(p) {
    return (100 * p).toFixed(1) + "%";
  }

  function cell(tag, content, cls) {
    const el = document.createElement(tag);
    if (cls) el.className = cls;
    if (content !== undefined) el.textContent = content;
    return el;
  }

  /** The bars of what comes next, the prediction line and the per-step table. */
  function showPredictions() {
    const reader = page.reader;
    const probs = reader.probs[reader.text.length];
    const bars = $("bars");
    bars.replaceChildren();
    if (!probs) {
      $("bars-note").textContent = "Type a character: the model predicts after reading one.";
    } else {
      const top = charnext.topK(probs, BARS);
      $("bars-note").textContent = `Next, after ${reader.text.length.toLocaleString()} characters: ` +
        `${shown[top[0][0]]} ${pct(top[0][1])}`;
      for (const [i, p] of top) {
        const li = cell("li");
        li.append(cell("span", shown[i], "ch"));
        const bar = cell("span", undefined, "bar");
        const fill = cell("span");
        fill.style.width = (100 * p).toFixed(2) + "%"; // CSSOM: the CSP allows it
        bar.append(fill);
        li.append(bar, cell("span", pct(p), "p"));
        bars.append(li);
      }
    }
    showTable(reader);
  }

  function argmax(p) {
    let best = 0;
    for (let i = 1; i < p.length; i++) if (p[i] > p[best]) best = i;
    return best;
  }

  /** The per-step table (its last ROWS steps) and the prediction after each step. */
  function showTable(reader) {
    const body = $("steps-body");
    body.replaceChildren();
    const first = lineMode ? 0 : 1; // a stream model predicts after its first character
    const n = reader.text.length;
    const from = Math.max(first, n - ROWS + 1);
    let prediction = from > first ? "…" : "";
    for (let t = from; t <= n; t++) {
      const probs = reader.probs[t];
      const best = argmax(probs);
      prediction += shown[best];
      const input = t === 0 ? NL : reader.text[t - 1];
      const next = t < n ? reader.text[t] : -1;
      const tr = cell("tr");
      tr.append(cell("td", String(t), "num"), cell("td", shown[input], "ch"));
      const predicted = cell("td", shown[best], "ch");
      if (next >= 0) predicted.append(next === best ? cell("span", " ✓", "hit") : cell("span", " ✗", "miss"));
      tr.append(predicted, cell("td", probs[best].toFixed(3), "num"));
      const alts = cell("td");
      for (const [i, p] of charnext.topK(probs, ALTERNATIVES)) {
        const alt = cell("span", undefined, "alt");
        alt.append(cell("code", shown[i]), " " + p.toFixed(2));
        alts.append(alt);
      }
      tr.append(alts);
      body.append(tr);
    }
    const steps = n + 1 - first;
    $("prediction").textContent = steps > 0 ? prediction : "";
    $("steps-note").textContent = steps > ROWS ? `The last ${ROWS} of ${steps.toLocaleString()} steps.` : "";
  }

  /** Tab accepts the most likely next character; Escape then Tab leaves the box. */
  function onKey(e) {
    if (e.key === "Escape") {
      leaveOnTab = true;
      $("message").textContent = "Tab now moves to the next control.";
      return;
    }
    if (e.key === "Tab" && !e.shiftKey && !e.ctrlKey && !e.altKey && !e.metaKey && !leaveOnTab) {
      const reader = page.reader;
      const probs = reader.text.length === target.length ? reader.probs[reader.text.length] : null;
      if (probs) {
        e.preventDefault();
        text.value += vocab[charnext.topK(probs, 1)[0][0]];
        text.setSelectionRange(text.value.length, text.value.length);
        onInput();
      }
    }
    if (e.key !== "Escape") leaveOnTab = false;
  }

  // ------------------------------------------------------------------------------------------
  // generation

  let running = null; // the generation in progress: {stop: true} ends it

  function readSettings() {
    const num = (id) => Number($(id).value);
    const s = {
      n: num("gen-n"), temperature: num("gen-temperature"), topK: num("gen-top-k"),
      topP: num("gen-top-p"), seed: $("gen-seed").value.trim(),
    };
    if (!Number.isInteger(s.n) || s.n < 1 || s.n > 1000000) throw new Error("the count must be a whole number from 1");
    if (!(s.temperature >= 0)) throw new Error("temperature must be 0 (greedy) or more");
    if (!Number.isInteger(s.topK) || s.topK < 0) throw new Error("top-k must be 0 (off) or a whole number");
    if (!(s.topP > 0 && s.topP <= 1)) throw new Error("top-p must be in (0, 1]");
    if (!/^-?\d+$/.test(s.seed)) throw new Error("the seed must be a whole number");
    return s;
  }

  function shellQuote(s) {
    return /^[\w.,:/@+-]+$/.test(s) ? s : "'" + s.replace(/'/g, "'\\''") + "'";
  }

  /** The `charnext predict` command that draws the same text. */
  function predictCommand(prefix, s, count) {
    const parts = ["charnext predict", shellQuote(prefix || ""), "-c", shellQuote(spec.checkpoint)];
    parts.push("-n", String(lineMode ? LINE_CAP : s.n));
    if (lineMode && count > 1) parts.push("--num-samples", String(count));
    parts.push("--temperature", String(s.temperature));
    if (s.topK) parts.push("--top-k", String(s.topK));
    if (s.topP < 1) parts.push("--top-p", String(s.topP));
    if (s.temperature > 0) parts.push("--seed", s.seed);
    return parts.join(" ");
  }

  // a yield to the event loop without setTimeout's 4 ms clamp
  const channel = new MessageChannel();
  const waiting = [];
  channel.port1.onmessage = () => waiting.shift()();
  const yieldNow = () => new Promise((resolve) => { waiting.push(resolve); channel.port2.postMessage(0); });

  async function onGenerate(e) {
    e.preventDefault();
    if (running) return;
    let s;
    try {
      s = readSettings();
    } catch (err) {
      $("gen-error").textContent = err.message;
      return;
    }
    $("gen-error").textContent = "";
    const sample = { temperature: s.temperature, topK: s.topK, topP: s.topP };
    const all = indicesOf(text.value);
    const prefix = lineMode ? all.slice(all.lastIndexOf(NL) + 1) : all;
    const prefixText = prefix.map((i) => vocab[i]).join("");
    const count = lineMode ? (s.temperature === 0 ? 1 : s.n) : 1; // greedy lines are all the same
    page.lastGeneration = null;
    const out = $("out");
    out.replaceChildren();
    const node = document.createTextNode("");
    out.append(cell("span", lineMode ? "" : prefixText, "prompt"), node);
    running = { stop: false };
    $("gen-go").disabled = true;
    $("gen-stop").disabled = false;
    out.setAttribute("aria-busy", "true");
    const t0 = performance.now();
    let made = 0;
    const reader = page.reader;
    const caughtUp = reader.text.length === all.length && reader.text.every((idx, i) => idx === all[i]);
    for (let j = 0; j < count && !running.stop; j++) {
      const rng = new charnext.Pcg32(BigInt(s.seed), j); // line j of predict --num-samples: stream j
      const length = lineMode ? LINE_CAP : s.n;
      const stop = lineMode ? NL : -1;
      // the reader's state is the prefix's, read as predict reads it; else read it afresh
      const from = caughtUp ? reader.start() : charnext.readPrefix(page.model, prefix, stop, prime);
      const chars = charnext.continueFrom(page.model, from.state, from.logits, length, sample, rng, stop);
      if (lineMode) node.appendData(prefixText);
      let chunk = "", last = performance.now();
      for (const idx of chars) {
        chunk += vocab[idx];
        made++;
        if (performance.now() - last > 40) { // show what is there, and let the page breathe
          node.appendData(chunk);
          chunk = "";
          await yieldNow();
          last = performance.now();
          if (running.stop) break;
        }
      }
      node.appendData(chunk);
      if (lineMode && !node.data.endsWith("\n")) node.appendData("\n");
    }
    const seconds = (performance.now() - t0) / 1000;
    const stopped = running.stop ? " (stopped)" : "";
    $("gen-info").textContent = `${made.toLocaleString()} characters in ${seconds.toFixed(2)} s ` +
      `(${Math.round(made / Math.max(seconds, 1e-6)).toLocaleString()} characters/s)${stopped}.`;
    $("gen-command").textContent = predictCommand(prefixText, s, count);
    page.lastGeneration = { text: node.data, made: made, seconds: seconds };
    running = null;
    out.setAttribute("aria-busy", "false");
    $("gen-go").disabled = false;
    $("gen-stop").disabled = true;
  }

  // ------------------------------------------------------------------------------------------
  // start

  async function start() {
    const bytes = bytesOf($("weights").textContent.trim());
    const wasm = $("kernel") ? bytesOf($("kernel").textContent.trim()) : null;
    page.weights = bytes;
    page.model = await charnext.CharModel.load(spec, bytes, wasm);
    page.reader = new Reader(page.model);
    $("engine").textContent = page.model.kernel.name;
    text.addEventListener("input", onInput);
    text.addEventListener("keydown", onKey);
    $("gen").addEventListener("submit", onGenerate);
    $("gen-stop").addEventListener("click", () => { if (running) running.stop = true; });
    text.disabled = false;
    $("gen-go").disabled = false;
    onInput(); // the text the page opened with
    page.readyAt = performance.now();
    document.body.dataset.ready = "1";
  }

  start().catch((err) => {
    $("bars-note").textContent = "The model could not start: " + err.message;
    throw err;
  });
})();
