// checkerless live page: a finished job's ONNX network run in this browser by onnxruntime-web
// (served by the API from the npm package scripts/setup.sh installs), on the webcam or a chosen
// image or video, with the stylise options computed here exactly as the server computes them
// (models/stylize.py's finish, models/colour.py). Plain JS, no build step.
const CheckerlessLive = (() => {
  const $ = sel => document.querySelector(sel);
  const {esc} = Checkerless;
  const VENDOR = "vendor/ort/";
  const SLOW_FPS = 5, SLOW_FRAMES = 6;  // under 5 fps over the first 6 measured frames: not live

  // The API key as every page keeps it (common.js: one prompt per tab); a refusal here is an error.
  async function authFetch(path) {
    const r = await Checkerless.authFetch(path);
    if (!r.ok) {
      const body = r.headers.get("content-type")?.includes("json") ? await r.json() : {detail: await r.text()};
      throw new Error(`${path}: ${r.status} ${body.detail || r.statusText}`);
    }
    return r;
  }

  function status(text, isError = false) {
    const el = $("#status");
    el.textContent = text; el.className = isError ? "error" : "muted";
    document.body.dataset.state = isError ? "error" : document.body.dataset.state || "";
  }

  // ---- onnxruntime-web: the WebGPU build where the browser offers an adapter, else the WASM one --
  function loadScript(src) {
    return new Promise((ok, fail) => {
      const s = document.createElement("script");
      s.src = src; s.onload = ok; s.onerror = () => fail(new Error(`could not load ${src}`));
      document.head.appendChild(s);
    });
  }

  async function hasWebGPU() {
    if (!navigator.gpu) return false;
    try { return !!(await navigator.gpu.requestAdapter()); } catch { return false; }
  }

  async function loadRuntime(gpu) {
    const file = gpu ? "ort.webgpu.min.js" : "ort.wasm.min.js";
    // Asked first, so a server without the npm package says so instead of a bare script error.
    const probe = await fetch(VENDOR + file, {cache: "force-cache"});
    if (!probe.ok) throw new Error(`onnxruntime-web is not installed on this server (${VENDOR}${file}: ${probe.status}). ` +
      "Run scripts/setup.sh (it runs npm ci in service/api/web), then reload this page.");
    await loadScript(VENDOR + file);
    ort.env.wasm.wasmPaths = new URL(VENDOR, location.href).href;  // never a CDN
    return ort;
  }

  async function createSession(ort, model, gpu) {
    if (gpu) {
      try {
        return {session: await ort.InferenceSession.create(model, {executionProviders: ["webgpu"]}), backend: "WebGPU"};
      } catch (e) {
        console.warn("WebGPU failed, falling back to WebAssembly:", e);
      }
    }
    const session = await ort.InferenceSession.create(model, {executionProviders: ["wasm"]});
    const threads = ort.env.wasm.numThreads || (self.crossOriginIsolated ? "several" : 1);
    return {session, backend: `WebAssembly on the CPU (${threads} thread${threads === 1 ? "" : "s"})`};
  }

  // ---- the stylise options (models/stylize.py finish, models/colour.py), per frame ----------
  // Full-range BT.601 luminance (models/colour.py RGB_TO_YCBCR's first row).
  const YR = 0.299, YG = 0.587, YB = 0.114;
  const COVARIANCE_EPS = 1e-3;

  // preserve_luminance: the stylised Y, the photo's chroma as per-channel offsets, Y clamped
  // to the range that keeps every channel inside 0..255.
  function luminance(s, p, n) {
    const out = new Float64Array(3 * n);
    for (let i = 0; i < n; i++) {
      const pr = p[i], pg = p[n + i], pb = p[2 * n + i];
      const yOut = YR * s[i] + YG * s[n + i] + YB * s[2 * n + i];
      const yPhoto = YR * pr + YG * pg + YB * pb;
      const orr = pr - yPhoto, og = pg - yPhoto, ob = pb - yPhoto;
      const lo = Math.max(-orr, -og, -ob), hi = Math.min(255 - orr, 255 - og, 255 - ob);
      const y = Math.min(Math.max(yOut, lo), hi);
      out[i] = y + orr; out[n + i] = y + og; out[2 * n + i] = y + ob;
    }
    return out;
  }

  function colourStats(x, n) {  // mean (3) and biased covariance (3x3), as colour_stats
    const mean = [0, 0, 0];
    for (let c = 0; c < 3; c++) { let t = 0; for (let i = 0; i < n; i++) t += x[c * n + i]; mean[c] = t / n; }
    const cov = [[0, 0, 0], [0, 0, 0], [0, 0, 0]];
    for (let a = 0; a < 3; a++) for (let b = a; b < 3; b++) {
      let t = 0;
      for (let i = 0; i < n; i++) t += (x[a * n + i] - mean[a]) * (x[b * n + i] - mean[b]);
      cov[a][b] = cov[b][a] = t / n;
    }
    return {mean, cov};
  }

  // Eigen-decomposition of a symmetric 3x3 (cyclic Jacobi; converges to machine precision
  // in a few sweeps): values, and vectors as columns of v.
  function eighSym3(m) {
    const a = m.map(r => r.slice()), v = [[1, 0, 0], [0, 1, 0], [0, 0, 1]];
    for (let sweep = 0; sweep < 50; sweep++) {
      const off = a[0][1] ** 2 + a[0][2] ** 2 + a[1][2] ** 2;
      if (off < 1e-30 * (a[0][0] ** 2 + a[1][1] ** 2 + a[2][2] ** 2 + 1e-300)) break;
      for (const [p, q] of [[0, 1], [0, 2], [1, 2]]) {
        if (a[p][q] === 0) continue;
        const theta = (a[q][q] - a[p][p]) / (2 * a[p][q]);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1), s = t * c;
        for (let k = 0; k < 3; k++) {  // a <- a J (columns p, q)
          const akp = a[k][p], akq = a[k][q];
          a[k][p] = c * akp - s * akq; a[k][q] = s * akp + c * akq;
        }
        for (let k = 0; k < 3; k++) {  // a <- J^T a (rows p, q)
          const apk = a[p][k], aqk = a[q][k];
          a[p][k] = c * apk - s * aqk; a[q][k] = s * apk + c * aqk;
        }
        for (let k = 0; k < 3; k++) {
          const vkp = v[k][p], vkq = v[k][q];
          v[k][p] = c * vkp - s * vkq; v[k][q] = s * vkp + c * vkq;
        }
      }
    }
    return {values: [a[0][0], a[1][1], a[2][2]], vectors: v};
  }

  function sqrtm(c, inverse) {  // as colour.py _sqrtm: eigenvalues clamped to COVARIANCE_EPS
    const {values, vectors: v} = eighSym3(c);
    const d = values.map(x => Math.max(x, COVARIANCE_EPS)).map(x => inverse ? 1 / Math.sqrt(x) : Math.sqrt(x));
    const r = [[0, 0, 0], [0, 0, 0], [0, 0, 0]];
    for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 3; k++) r[i][j] += v[i][k] * d[k] * v[j][k];
    return r;
  }

  const ridge = c => c.map((row, i) => row.map((x, j) => x + (i === j ? COVARIANCE_EPS : 0)));
  const matmul = (a, b) => a.map((row, i) => [0, 1, 2].map(j => row[0] * b[0][j] + row[1] * b[1][j] + row[2] * b[2][j]));

  // match_histogram: A = C_photo^(1/2) C_out^(-1/2), out = A (s - mu_s) + mu_photo, clamped.
  function histogram(s, p, n) {
    const st = colourStats(s, n), ph = colourStats(p, n);
    const a = matmul(sqrtm(ridge(ph.cov), false), sqrtm(ridge(st.cov), true));
    const out = new Float64Array(3 * n);
    for (let i = 0; i < n; i++) {
      const r = s[i] - st.mean[0], g = s[n + i] - st.mean[1], b = s[2 * n + i] - st.mean[2];
      for (let c = 0; c < 3; c++)
        out[c * n + i] = Math.min(255, Math.max(0, a[c][0] * r + a[c][1] * g + a[c][2] * b + ph.mean[c]));
    }
    return out;
  }

  // finish: colours first, then out = photo + strength * (clamp(recoloured) - photo); strength 1
  // keeps the recoloured image as it is. Writes 8-bit RGBA: Uint8ClampedArray clamps and rounds
  // half to even, as torch's clamp().round() does for the server's PNG.
  function finish(s, p, n, strength, colors, rgba) {
    const out = colors === "luminance" ? luminance(s, p, n) : colors === "histogram" ? histogram(s, p, n) : s;
    for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) {
      let v = out[c * n + i];
      if (strength !== 1) v = p[c * n + i] + strength * (Math.min(255, Math.max(0, v)) - p[c * n + i]);
      rgba[4 * i + c] = v;
    }
    for (let i = 0; i < n; i++) rgba[4 * i + 3] = 255;
  }

  // ---- the page -------------------------------------------------------------------------------
  async function start(id) {
    const st = {session: null, mixInput: false, mix: null, source: null, dirty: false, running: false,
                stylised: null, photo: null, w: 0, h: 0, frames: 0, times: [], measured: [], slowChecked: false,
                runs: 0, lastVideoTime: -1};
    const output = $("#output"), input = $("#input"), video = $("#video");
    const inCtx = input.getContext("2d", {willReadFrequently: true}), outCtx = output.getContext("2d");
    window.addEventListener("unhandledrejection", e => status(String(e.reason?.message || e.reason), true));
    window.addEventListener("error", e => status(String(e.message), true));
    if (!id) { status("No job given: open this page as live.html?id=JOB_ID (the job page links here).", true); return; }
    $("#title").textContent = `live · job ${id}`;
    document.title = `checkerless live · ${id}`;

    let job;
    try {
      status("reading the job…");
      job = await (await authFetch(`/v1/jobs/${encodeURIComponent(id)}`)).json();
      $("#title").innerHTML = `live · <a href="job.html?id=${encodeURIComponent(id)}">job ${esc(id)}</a>`;
      if (!job.links?.onnx) {
        status(job.state === "succeeded"
          ? "This job has no ONNX export: the workers export a finished job as ONNX when CHECKERLESS_EXPORT_FORMATS includes \"onnx\"; `checkerless export` makes one from its checkpoint."
          : `This job is ${job.state}: the live page needs its finished network (an ONNX export).`, true);
        return;
      }
      const gpu = await hasWebGPU();
      status(`loading onnxruntime-web (${gpu ? "WebGPU, with WebAssembly as the fallback" : "WebAssembly"})…`);
      const ort = await loadRuntime(gpu);
      status("fetching the network…");
      const model = new Uint8Array(await (await authFetch(job.links.onnx)).arrayBuffer());
      status(`loading the network (${(model.length / 1e6).toFixed(1)} MB)…`);
      const {session, backend} = await createSession(ort, model, gpu);
      st.session = session; st.ort = ort;
      $("#backend").textContent = backend;
      document.body.dataset.backend = backend.startsWith("WebGPU") ? "webgpu" : "wasm";
      st.mixInput = session.inputNames.includes("mix");
      setupStyles(job.styles ?? []);
      status("ready: choose the webcam, an image or a video.");
      document.body.dataset.state = "ready";
    } catch (e) {
      status(e.message || String(e), true);
      return;
    }

    // A several-style network exported with a `mix` input: one slider per style.
    function setupStyles(styles) {
      const box = $("#styles-mix");
      if (!st.mixInput) {
        if (styles.length > 1) { box.hidden = false; box.innerHTML = `<span class="muted">This export has its style mix fixed (exported before the mix input): export it again to choose styles here.</span>`; }
        return;
      }
      const n = styles.length;
      st.mix = new Float32Array(n); st.mix[0] = 1;  // style 0, the network's default
      box.hidden = false;
      box.innerHTML = `<span class="muted">style mix (weights, normalised):</span>` + styles.map((s, i) =>
        `<label>${esc(s.name ?? s.id)} <input type="range" class="mix" data-style="${i}" min="0" max="1" step="0.01" value="${i === 0 ? 1 : 0}"></label>
         <button class="secondary only" data-style="${i}">only ${esc(s.name ?? s.id)}</button>`).join("");
      const sliders = [...box.querySelectorAll("input.mix")];
      const apply = () => {
        const w = sliders.map(s => +s.value);
        if (!w.some(x => x > 0)) { status("A mix needs one weight above 0.", true); return; }
        st.mix = Float32Array.from(w); st.stylised = null; st.dirty = true;
      };
      sliders.forEach(s => s.addEventListener("input", apply));
      box.querySelectorAll("button.only").forEach(b => b.addEventListener("click", () => {
        sliders.forEach(s => { s.value = s.dataset.style === b.dataset.style ? 1 : 0; }); apply();
      }));
    }

    function size(sw, sh) {  // the chosen resolution: the shorter side, the aspect kept
      const r = $("#resolution").value;
      if (r === "original") return [sw, sh];
      const k = +r / Math.min(sw, sh);
      return [Math.max(1, Math.round(sw * k)), Math.max(1, Math.round(sh * k))];
    }

    async function runNetwork(photo, w, h) {
      const feeds = {image: new st.ort.Tensor("float32", photo, [1, 3, h, w])};
      if (st.mixInput) feeds.mix = new st.ort.Tensor("float32", st.mix, [st.mix.length]);
      const result = await st.session.run(feeds);
      st.runs++;
      return result.stylized.data;
    }

    async function frame() {
      const src = st.source;
      const [sw, sh] = src.kind === "image" ? [src.bitmap.width, src.bitmap.height] : [video.videoWidth, video.videoHeight];
      if (!sw || !sh) return false;
      const [w, h] = size(sw, sh), n = w * h;
      const t0 = performance.now();
      const still = src.kind === "image";
      if (!still || !st.stylised || w !== st.w || h !== st.h) {
        if (input.width !== w || input.height !== h) { input.width = w; input.height = h; }
        inCtx.imageSmoothingQuality = "high";
        inCtx.drawImage(still ? src.bitmap : video, 0, 0, w, h);
        const px = inCtx.getImageData(0, 0, w, h).data;
        const photo = new Float32Array(3 * n);
        for (let i = 0; i < n; i++) { photo[i] = px[4 * i]; photo[n + i] = px[4 * i + 1]; photo[2 * n + i] = px[4 * i + 2]; }
        if (st.runs === 0) await runNetwork(photo, w, h);  // the first run compiles: not timed
        const t1 = performance.now();
        st.stylised = await runNetwork(photo, w, h);
        st.photo = photo; st.w = w; st.h = h; st.networkMs = performance.now() - t1;
      }
      const t2 = performance.now();
      if (output.width !== w || output.height !== h) { output.width = w; output.height = h; }
      const image = outCtx.createImageData(w, h);
      finish(st.stylised, st.photo, n, +$("#strength").value, $("#colors").value, image.data);
      outCtx.putImageData(image, 0, 0);
      const finishMs = performance.now() - t2;
      st.frames++;
      output.dataset.frames = st.frames;
      output.dataset.size = `${w}x${h}`;
      // fps: for a video or the camera, frames done per second over the last 20; for a still
      // image, what the network and the options take for one frame (what a video would get).
      const now = performance.now();
      st.times.push(now); if (st.times.length > 20) st.times.shift();
      const fps = still || st.times.length < 2 ? 1000 / (st.networkMs + finishMs)
        : (st.times.length - 1) * 1000 / (st.times.at(-1) - st.times[0]);
      $("#fps").textContent = `${fps.toFixed(1)} fps`;
      $("#fps").dataset.fps = fps.toFixed(2);
      $("#timing").textContent = `${w}×${h}: network ${st.networkMs.toFixed(0)} ms, options ${finishMs.toFixed(0)} ms a frame${still ? "" : ` (${(now - t0).toFixed(0)} ms in all)`}`;
      $("#snapshot").disabled = false;
      checkSlow(fps, still, w, h);
      return true;
    }

    // Too slow for live use: said once per resolution, with a lower one to try.
    function checkSlow(fps, still, w, h) {
      if (st.slowChecked) return;
      st.measured.push(fps);
      if (!still && st.measured.length < SLOW_FRAMES) return;
      st.slowChecked = true;
      const mean = still ? fps : st.measured.length / st.measured.reduce((a, f) => a + 1 / f, 0);
      const sel = $("#resolution"), options = [...sel.options].map(o => o.value).filter(v => v !== "original").map(Number);
      const lower = options.filter(v => v < Math.min(w, h)).sort((a, b) => b - a)[0];
      if (mean >= SLOW_FPS) { $("#slow").hidden = true; return; }
      $("#slow").hidden = false;
      $("#slow").innerHTML = `Too slow for live use here: ${mean.toFixed(1)} fps at ${w}×${h} (live needs about ${SLOW_FPS}).` +
        (lower ? ` <button class="secondary" id="lower">try ${lower} px</button>` : " This is already the lowest resolution offered.");
      $("#lower")?.addEventListener("click", () => { sel.value = String(lower); resolutionChanged(); });
    }

    function resolutionChanged() {
      st.stylised = null; st.dirty = true; st.slowChecked = false; st.measured = []; st.times = [];
      $("#slow").hidden = true;
    }

    async function loop() {
      if (st.running) return;
      st.running = true;
      try {
        while (st.source) {
          const live = st.source.kind !== "image" && !video.paused && video.readyState >= 2;
          if (st.dirty || (live && video.currentTime !== st.lastVideoTime)) {
            st.dirty = false; st.lastVideoTime = video.currentTime;
            await frame();
            // A task boundary between frames: a WASM run resolves in microtasks, so without
            // this the page would never paint, take input or hear the stop button.
            await new Promise(ok => setTimeout(ok, 0));
          } else {
            await new Promise(ok => setTimeout(ok, 8));
          }
        }
      } catch (e) {
        status(`stylising failed: ${e.message || e}`, true);
        stop();
      } finally {
        st.running = false;
      }
    }

    function stop() {
      const stream = video.srcObject;
      if (stream) { stream.getTracks().forEach(t => t.stop()); video.srcObject = null; }
      video.pause();
      if (video.src) { URL.revokeObjectURL(video.src); video.removeAttribute("src"); video.load(); }
      st.source = null;
      $("#stop").disabled = true;
    }

    function use(source, what) {
      st.source = source; st.stylised = null; st.dirty = true; st.lastVideoTime = -1;
      st.slowChecked = false; st.measured = []; st.times = [];
      $("#stop").disabled = source.kind === "image";
      status(`stylising ${what}`);
      loop();
    }

    $("#camera").addEventListener("click", async () => {
      stop();
      if (!navigator.mediaDevices?.getUserMedia) {
        status("This browser gives no camera to this page: the camera needs https, or http://localhost.", true); return;
      }
      try {
        video.srcObject = await navigator.mediaDevices.getUserMedia({video: {width: {ideal: 640}, height: {ideal: 480}}, audio: false});
        await video.play();
        use({kind: "camera"}, "the webcam");
      } catch (e) {
        const why = {NotAllowedError: "the browser or you refused the camera (allow it in the address bar)",
                     NotFoundError: "no camera was found", NotReadableError: "the camera is in use by another program"}[e.name];
        status(`No webcam: ${why ?? e.message}`, true);
      }
    });
    $("#image-file").addEventListener("change", async e => {
      const file = e.target.files[0]; if (!file) return;
      stop();
      try {
        // Pixels as stored: no colour-space conversion, so a PNG gives the server the same numbers.
        const bitmap = await createImageBitmap(file, {colorSpaceConversion: "none", premultiplyAlpha: "none"});
        use({kind: "image", bitmap}, file.name);
      } catch (err) {
        status(`${file.name}: not an image this browser can read (${err.message})`, true);
      }
    });
    $("#video-file").addEventListener("change", async e => {
      const file = e.target.files[0]; if (!file) return;
      stop();
      video.src = URL.createObjectURL(file);
      try {
        await video.play();
        use({kind: "video"}, file.name);
      } catch (err) {
        status(`${file.name}: not a video this browser can play (${err.message})`, true);
      }
    });
    $("#stop").addEventListener("click", () => { stop(); status("stopped"); });
    $("#resolution").addEventListener("change", resolutionChanged);
    $("#strength").addEventListener("input", () => { $("#strength-value").textContent = (+$("#strength").value).toFixed(2); st.dirty = true; });
    $("#colors").addEventListener("change", () => { st.dirty = true; });
    $("#snapshot").addEventListener("click", () => output.toBlob(blob => {
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob); a.download = `${id}-live.png`; a.click();
      setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    }, "image/png"));
  }

  // The colour functions are exposed for checking them against models/colour.py.
  return {start, finish, luminance, histogram, eighSym3};
})();
