// checkerless web pages: plain JS, no build step. Numbers always sit beside their pictures.
const Checkerless = (() => {
  const $ = (sel, el = document) => el.querySelector(sel);
  const fmt = (v, d = 1) => (v === null || v === undefined || Number.isNaN(v)) ? "–" : (v > 0 ? "+" : "") + v.toFixed(d);
  const esc = s => String(s).replace(/[&<>"]/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));

  // The API key travels in a header, never in a URL or a cookie; the page asks once and keeps
  // it for this tab (sessionStorage). Images are fetched with it too and shown from blob URLs.
  const KEY = "checkerless-api-key";
  function apiKey(again = false) {
    let key = again ? null : sessionStorage.getItem(KEY);
    if (!key) {
      key = (prompt("API key (from `checkerless keys create`; with `checkerless serve`, the file local-key in its data folder):") || "").trim();
      sessionStorage.setItem(KEY, key);
    }
    return key;
  }

  async function authFetch(path, opts = {}) {
    const send = key => fetch(path, {...opts, headers: {...(opts.headers || {}), "X-API-Key": key}});
    let r = await send(apiKey());
    if (r.status === 401) r = await send(apiKey(true));  // unknown or revoked: ask once more
    return r;
  }

  async function api(path, opts = {}) {
    const r = path.startsWith("/v1/") ? await authFetch(path, opts) : await fetch(path, opts);
    const body = r.headers.get("content-type")?.includes("json") ? await r.json() : await r.text();
    if (!r.ok) throw new Error(body.detail || body || r.statusText);
    return body;
  }

  const blobs = new Map();  // API image URL -> blob URL, fetched once
  function showImages(root) {
    for (const img of root.querySelectorAll("img[data-src]")) {
      const url = img.dataset.src;
      if (!blobs.has(url)) blobs.set(url, authFetch(url).then(async r => {
        if (!r.ok) throw new Error(`${url}: ${r.status}`);
        return URL.createObjectURL(await r.blob());
      }));
      blobs.get(url).then(src => { img.src = src; }, err => { img.alt = err.message; });
    }
  }

  // ---- synchronised pixel viewers: one view state, every image follows -----------------
  function ViewGroup() {
    const view = {scale: 1, x: 0, y: 0};
    const viewers = [];
    const apply = () => {
      for (const v of viewers) for (const img of v.querySelectorAll("img"))
        img.style.transform = `translate(${view.x}px, ${view.y}px) scale(${view.scale})`;
      const label = $("#zoom-label"); if (label) label.textContent = `zoom ${+view.scale.toFixed(2)}×`;
    };
    function attach(viewer) {
      viewers.push(viewer);
      viewer.addEventListener("wheel", e => {
        e.preventDefault();
        const r = viewer.getBoundingClientRect(), mx = e.clientX - r.left, my = e.clientY - r.top;
        const s = Math.min(64, Math.max(0.1, view.scale * (e.deltaY < 0 ? 1.25 : 0.8)));
        view.x = mx - (mx - view.x) * s / view.scale; view.y = my - (my - view.y) * s / view.scale; view.scale = s;
        apply();
      }, {passive: false});
      let drag = null;
      viewer.addEventListener("pointerdown", e => { drag = {x: e.clientX, y: e.clientY}; viewer.setPointerCapture(e.pointerId); });
      viewer.addEventListener("pointermove", e => {
        if (!drag) return;
        view.x += e.clientX - drag.x; view.y += e.clientY - drag.y; drag = {x: e.clientX, y: e.clientY}; apply();
      });
      viewer.addEventListener("pointerup", () => { drag = null; });
      apply();
    }
    function zoomTo(scale, cx = null, cy = null) {  // (cx, cy): image pixel to centre
      const v = viewers[0]; if (!v) return;
      const r = v.getBoundingClientRect();
      const img = v.querySelector("img");
      cx ??= (img?.naturalWidth || 0) / 2; cy ??= (img?.naturalHeight || 0) / 2;
      view.scale = scale; view.x = r.width / 2 - cx * scale; view.y = r.height / 2 - cy * scale; apply();
    }
    function fit() {
      const v = viewers[0], img = v?.querySelector("img"); if (!img || !img.naturalWidth) return;
      const r = v.getBoundingClientRect();
      zoomTo(Math.min(r.width / img.naturalWidth, r.height / img.naturalHeight));
    }
    return {view, attach, apply, zoomTo, fit, reset() { viewers.length = 0; }};
  }

  function viewerHTML(src, caption) {
    return `<div class="viewer"><img data-src="${esc(src)}" alt="${esc(caption)}" draggable="false"><span class="caption">${esc(caption)}</span></div>`;
  }

  // ---- small SVG line charts ----------------------------------------------------------------
  const COLOURS = ["#00c8e0", "#ff9f1c", "#3ecf8e", "#e056fd", "#ff5a4e"];
  function chart(title, series, {w = 420, h = 200, log = false} = {}) {
    const pts = series.flatMap(s => s.points).filter(p => Number.isFinite(p[1]));
    if (!pts.length) return `<div class="chart muted" style="width:${w}px;padding:8px">${esc(title)}: no data yet</div>`;
    const tf = y => log ? Math.log10(Math.max(y, 1e-12)) : y;
    const xs = pts.map(p => p[0]), ys = pts.map(p => tf(p[1]));
    const [x0, x1] = [Math.min(...xs), Math.max(...xs) || 1], [y0, y1] = [Math.min(...ys), Math.max(...ys)];
    const X = x => 52 + (x - x0) / ((x1 - x0) || 1) * (w - 50), Y = y => h - 25 - (tf(y) - y0) / ((y1 - y0) || 1) * (h - 45);
    const lines = series.map((s, i) => `<polyline fill="none" stroke="${COLOURS[i % COLOURS.length]}" stroke-width="1.6" points="${
      s.points.filter(p => Number.isFinite(p[1])).map(p => `${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(" ")}"/>`).join("");
    const legend = series.map((s, i) => `<tspan fill="${COLOURS[i % COLOURS.length]}">■ ${esc(s.name)} </tspan>`).join("");
    const lab = v => log ? (10 ** v).toExponential(1) : v.toFixed(1);
    return `<svg class="chart" width="${w}" height="${h}" font-size="11" fill="#8b95a3">
      <text x="40" y="14">${esc(title)}</text><text x="${w - 8}" y="14" text-anchor="end">${legend}</text>
      <text x="50" y="${Y(log ? 10 ** y1 : y1) + 4}" text-anchor="end">${lab(y1)}</text>
      <text x="50" y="${h - 25}" text-anchor="end">${lab(y0)}</text>
      <text x="40" y="${h - 8}">step ${x0}</text><text x="${w - 8}" y="${h - 8}" text-anchor="end">${x1}</text>
      <line x1="40" x2="${w - 10}" y1="${h - 25}" y2="${h - 25}" stroke="#2d3440"/>${lines}</svg>`;
  }

  // ---- the index page: submit, and lists with live progress --------------------------------
  // The form's defaults and limits are the API's own (one place: the training config).
  async function settingsFromSchema(form) {
    const schema = (await api("/openapi.json")).components.schemas.JobCreate.properties;
    for (const input of form.querySelectorAll("input[data-setting]")) {
      const field = schema[input.name];
      input.value = field.default;
      if (field.minimum !== undefined) input.min = field.minimum;
      if (field.exclusiveMinimum !== undefined) input.min = field.exclusiveMinimum;
      if (field.maximum !== undefined) input.max = field.maximum;
    }
  }

  async function index() {
    const decoders = await api("/v1/decoders");
    await settingsFromSchema($("#experiment-form"));
    $("#decoders").innerHTML = decoders.map(d => `<label style="flex-direction:row;gap:6px;color:var(--ink)">
      <input type="checkbox" name="decoder" value="${esc(d.name)}" ${["deconv", "resize-nearest"].includes(d.name) ? "checked" : ""}>
      ${esc(d.name)} <span class="muted">(${esc(d.overlap)} overlap)</span></label>`).join("");
    $("#experiment-form").addEventListener("submit", async e => {
      e.preventDefault();
      const f = e.target, status = $("#form-status");
      try {
        status.textContent = "uploading…";
        const style = new FormData(); style.append("file", f.style.files[0]);
        const styleId = (await api("/v1/styles", {method: "POST", body: style})).id;
        let contentId = f.content_set.value || null;  // a set picked from the list, else the files, if any
        if (!contentId && f.content.files.length) {
          const c = new FormData(); for (const file of f.content.files) c.append("files", file);
          contentId = (await api("/v1/content-sets", {method: "POST", body: c})).id;
        }
        const variants = [...f.querySelectorAll("input[name=decoder]:checked")].map(i => i.value);
        if (f.mix.value.trim()) variants.push(f.mix.value.trim());
        const settings = {style_id: styleId, content_set_id: contentId, size: +f.size.value, steps: +f.steps.value,
                          batch: +f.batch.value, seed: +f.seed.value, style_weight: +f.style_weight.value};
        const post = (path, body) => api(path, {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(body)});
        if (variants.length === 1) {  // one decoder: a plain training job, followed in the list below
          const job = await post("/v1/jobs", {...settings, decoder: variants[0]});
          status.textContent = `job ${job.id.slice(0, 8)} queued`; status.className = "muted";
          await refresh();
          return;
        }
        const exp = await post("/v1/experiments", {...settings, variants});
        location.href = `experiment.html?id=${exp.id}`;
      } catch (err) { status.textContent = err.message; status.className = "error"; }
    });
    $("#archive-form").addEventListener("submit", async e => {
      e.preventDefault();
      const f = e.target, file = f.archive.files[0], status = $("#archive-status");
      try {
        status.textContent = `uploading ${mb(file.size)} MB…`; status.className = "muted";
        const query = new URLSearchParams({name: f.name.value.trim() || file.name});
        // The File itself as the body: the browser streams it from disk.
        const set = await api(`/v1/content-sets/archive?${query}`, {method: "POST", body: file,
                                                                    headers: {"content-type": "application/octet-stream"}});
        status.textContent = `${file.name}: sent; validating as set ${set.id.slice(0, 8)}`;
        f.reset();
        await refresh();
      } catch (err) { status.textContent = err.message; status.className = "error"; }
    });
    const mb = n => (n / 1e6).toFixed(1);
    function renderSets(sets) {
      const read = s => {
        const p = s.progress, of = p.total_bytes ? `/${mb(p.total_bytes)}` : "";
        const bar = p.total_bytes ? `<div class="bar"><div style="width:${100 * p.bytes_read / p.total_bytes}%"></div></div>` : "";
        return `${bar}${p.members} members, ${mb(p.bytes_read)}${of} MB`;
      };
      $("#content-sets tbody").innerHTML = sets.map(s => `<tr data-set="${s.id}"><td>${s.id.slice(0, 8)}</td><td>${esc(s.name ?? "")}</td>
        <td>${s.source}</td><td class="state-${s.state}">${s.state}${s.error ? `: ${esc(s.error)}` : ""}</td>
        <td>${read(s)}</td><td>${s.count}</td><td>${(s.created_at ?? "").slice(0, 19)}</td></tr>`).join("");
      const pick = $("#experiment-form select[name=content_set]"), chosen = pick.value;
      pick.innerHTML = `<option value="">none</option>` + sets.filter(s => s.state === "ready").map(s =>
        `<option value="${s.id}">${esc(s.name ?? s.id.slice(0, 8))} (${s.count} images)</option>`).join("");
      pick.value = [...pick.options].some(o => o.value === chosen) ? chosen : "";
    }
    async function refresh() {
      const [exps, jobs, sets] = await Promise.all([api("/v1/experiments"), api("/v1/jobs"), api("/v1/content-sets")]);
      renderSets(sets);
      $("#experiments tbody").innerHTML = exps.map(x => `<tr><td><a href="experiment.html?id=${x.id}" style="color:var(--accent)">${x.id.slice(0, 8)}</a></td>
        <td>${x.variants.map(esc).join(" vs ")}</td><td class="state-${x.state}">${x.state}</td><td>${x.created_at.slice(0, 19)}</td></tr>`).join("");
      $("#jobs tbody").innerHTML = jobs.map(j => `<tr><td>${j.id.slice(0, 8)}</td><td>${esc(j.decoder)}</td>
        <td class="state-${j.state}">${j.state}${j.error ? `: ${esc(j.error)}` : ""}</td>
        <td><div class="bar"><div style="width:${100 * j.step / j.steps}%"></div></div>${j.step}/${j.steps}</td>
        <td>${j.losses.loss?.toExponential(3) ?? "–"}</td><td>${fmt(j.artifacts.artifact_p2)}</td><td>${j.seconds_per_step?.toFixed(2) ?? "–"}</td></tr>`).join("");
    }
    await refresh(); setInterval(refresh, 2000);
  }

  // ---- the experiment page -------------------------------------------------------------------
  async function experiment(id) {
    const group = ViewGroup(), own = ViewGroup();
    let exp = null, mode = "side", panel = null, fitted = false;
    $("#title").textContent = `experiment ${id}`;

    const dist = x => Number.isFinite(x) ? x.toPrecision(3) : "–";  // absent in jobs trained before it was measured
    function renderTable() {
      $("#scores tbody").innerHTML = exp.variants.map(v => {
        const p = v.panel.find(x => x.name === panel);
        const init = v.scores.init, now = v.scores.final;
        const cls = x => x === undefined || x === null ? "" : (x > 0 ? "score-bad" : "score-good");
        return `<tr data-decoder="${esc(v.decoder)}"><td>${esc(v.decoder)}</td><td class="state-${v.state}">${v.state}${v.error ? `: ${esc(v.error)}` : ""}</td>
          <td><div class="bar"><div style="width:${100 * v.step / v.steps}%"></div></div>${v.step}/${v.steps}</td>
          <td>${v.seconds_per_step?.toFixed(2) ?? "–"}</td>
          <td class="${cls(init?.artifact_p2)}">${fmt(init?.artifact_p2)}</td><td class="${cls(init?.artifact_p4)}">${fmt(init?.artifact_p4)}</td>
          <td class="${cls(now?.artifact_p2)}">${fmt(now?.artifact_p2)}</td><td class="${cls(now?.artifact_p4)}">${fmt(now?.artifact_p4)}</td>
          <td class="panel-score">${p ? `${fmt(p.period2_db)} / ${fmt(p.period4_db)}` : "–"}</td>
          <td class="style-distance">${dist(init?.style_distance)} → ${dist(now?.style_distance)}</td>
          <td class="content-distance">${dist(init?.content_distance)} → ${dist(now?.content_distance)}</td>
          <td>${v.losses.loss?.toExponential(3) ?? "–"}</td></tr>`;
      }).join("");
    }

    function renderViews() {
      const views = $("#views");
      group.reset();
      $("#swipe-control").hidden = mode !== "swipe";
      if (!exp.panel.length) { views.innerHTML = `<p class="muted">The outputs appear here when every variant has finished.</p>`; return; }
      const img = i => exp.variants[i].panel.find(p => p.name === panel).url;
      const cap = i => { const p = exp.variants[i].panel.find(x => x.name === panel);
        return `${exp.variants[i].decoder} · p2 ${fmt(p.period2_db)} dB · p4 ${fmt(p.period4_db)} dB`; };
      if (mode === "side") {
        views.innerHTML = exp.variants.map((v, i) => viewerHTML(img(i), cap(i))).join("");
      } else if (mode === "swipe") {
        views.innerHTML = `<div class="viewer" id="swipe-viewer"><div class="layer"><img data-src="${esc(img(1))}" draggable="false"></div>
          <div class="layer" id="swipe-top"><img data-src="${esc(img(0))}" draggable="false"></div>
          <span class="caption">left: ${esc(exp.variants[0].decoder)} · right: ${esc(exp.variants[1].decoder)}</span></div>`;
        const setClip = () => { $("#swipe-top").style.clipPath = `inset(0 ${100 - $("#swipe").value}% 0 0)`; };
        $("#swipe").oninput = setClip; setClip();
      } else {
        views.innerHTML = exp.comparisons.filter(c => c.panel === panel).map(c =>
          viewerHTML(c.difference_url, `|${c.a} − ${c.b}| × ${c.gain}`)).join("");
      }
      views.querySelectorAll(".viewer").forEach(v => group.attach(v));
      showImages(views);
      const first = views.querySelector("img");
      const ready = () => { if (!fitted) { group.fit(); fitted = true; } else group.apply(); };
      if (first.complete && first.naturalWidth) ready(); else first.addEventListener("load", ready, {once: true});
    }

    function renderSpectra() {
      if (!exp.panel.length) { $("#spectra").innerHTML = `<p class="muted">After training.</p>`; return; }
      const diffs = exp.comparisons.filter(c => c.panel === panel);
      $("#spectra").innerHTML = exp.spectra[panel].map((u, i) => `<figure><img data-src="${esc(u)}" alt="spectrum ${esc(exp.variants[i].decoder)}">
          <figcaption>${esc(exp.variants[i].decoder)}</figcaption></figure>`).join("") +
        diffs.map(c => `<figure><img data-src="${esc(c.difference_spectrum_url)}" alt="difference spectrum"><figcaption>${esc(c.a)} − ${esc(c.b)} (dB)</figcaption></figure>`).join("");
      showImages($("#spectra"));
    }

    function renderCurves() {
      const loss = exp.variants.map(v => ({name: v.decoder, points: v.loss_curve.map(r => [r.step, r.loss])}));
      // The probe's rows: artifact scores, and style/content distance (missing in older jobs' rows: no line).
      const probe = key => exp.variants.map(v => ({name: v.decoder, points: v.artifact_curve.map(r => [r.step, r[key]])}));
      $("#curves").innerHTML = chart("loss", loss, {log: true}) + chart("period-2 score of the probe (dB)", probe("artifact_p2")) +
        chart("period-4 score (dB)", probe("artifact_p4")) +
        chart("style distance (lower is better)", probe("style_distance"), {log: true}) +
        chart("content distance (lower is better)", probe("content_distance"), {log: true});
    }

    async function load() {
      exp = await api(`/v1/experiments/${id}`);
      $("#state").textContent = exp.state; $("#state").className = `state-${exp.state}`;
      const select = $("#panel");
      if (exp.panel.length && !panel) {
        panel = exp.panel[0];
        select.innerHTML = exp.panel.map(n => `<option>${esc(n)}</option>`).join("");
        renderViews(); renderSpectra();
      } else if (!exp.panel.length) renderViews();
      renderTable(); renderCurves();
      if (exp.state === "running") setTimeout(load, 1500);
    }

    $("#panel").onchange = e => { panel = e.target.value; renderTable(); renderViews(); renderSpectra(); };
    $("#modes").onclick = e => {
      if (!e.target.dataset.mode) return;
      mode = e.target.dataset.mode;
      $("#modes").querySelectorAll("button").forEach(b => b.classList.toggle("active", b === e.target));
      renderViews();
    };
    $("#zoom-fit").onclick = () => group.fit();
    $("#zoom-1").onclick = () => group.zoomTo(1);
    $("#zoom-8").onclick = () => group.zoomTo(8);
    $("#zoom-worst").onclick = () => {  // centre on the strongest period-2 block of the first variant
      const img = $("#views img"); if (!img?.naturalWidth) return;
      const c = document.createElement("canvas"); c.width = img.naturalWidth; c.height = img.naturalHeight;
      const ctx = c.getContext("2d"); ctx.drawImage(img, 0, 0);
      const d = ctx.getImageData(0, 0, c.width, c.height).data, B = 16;
      let best = [0, 0, -1];
      for (let by = 0; by + B <= c.height; by += B) for (let bx = 0; bx + B <= c.width; bx += B) {
        let s = 0;  // energy of the 2x2-periodic component: the checkerboard's own sign pattern
        for (let ch = 0; ch < 3; ch++) {
          const ph = [0, 0, 0, 0];
          for (let y = 0; y < B; y++) for (let x = 0; x < B; x++) ph[(y % 2) * 2 + x % 2] += d[((by + y) * c.width + bx + x) * 4 + ch];
          const m = (ph[0] + ph[1] + ph[2] + ph[3]) / 4; s += ph.reduce((a, v) => a + (v - m) ** 2, 0);
        }
        if (s > best[2]) best = [bx + B / 2, by + B / 2, s];
      }
      group.zoomTo(12, best[0], best[1]);
    };
    $("#own").onchange = async e => {
      const file = e.target.files[0]; if (!file) return;
      const status = $("#own-status"); status.textContent = "stylising with every variant…"; status.className = "muted";
      try {
        const fd = new FormData(); fd.append("files", file);
        const reqs = await api(`/v1/experiments/${id}/stylize`, {method: "POST", body: fd});
        const done = await Promise.all(reqs.map(async r => {
          let s = r.stylization;
          while (s.state === "queued" || s.state === "running") { await new Promise(ok => setTimeout(ok, 700)); s = await api(`/v1/stylizations/${s.id}`); }
          if (s.state !== "succeeded") throw new Error(`${r.decoder}: ${s.error}`);
          return {decoder: r.decoder, url: s.outputs[0].url};
        }));
        own.reset();
        $("#own-views").innerHTML = done.map(d => viewerHTML(d.url, d.decoder)).join("");
        $("#own-views").querySelectorAll(".viewer").forEach(v => own.attach(v));
        showImages($("#own-views"));
        const first = $("#own-views img");
        first.addEventListener("load", () => own.fit(), {once: true});
        status.textContent = `${file.name}: done`;
      } catch (err) { status.textContent = err.message; status.className = "error"; }
    };
    await load();
  }

  return {index, experiment, ViewGroup};
})();
