// checkerless web pages: plain JS, no build step. Numbers always sit beside their pictures.
// What every page shares: the API key and fetches, charts, image viewers, the form's fields read
// from the OpenAPI schema, the stylise box. Each page's own code is a file of its own (index.js,
// job.js, experiment.js) that takes these from `Checkerless` and adds its entry point there.
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
  // x: "step" for curves over training; {x: "frequency (cycles/px)"} for a spectrum.
  function chart(title, series, {w = 420, h = 200, log = false, x = "step", digits = 0} = {}) {
    const pts = series.flatMap(s => s.points).filter(p => Number.isFinite(p[1]));
    if (!pts.length) return `<div class="chart muted" style="width:${w}px;padding:8px">${esc(title)}: no data yet</div>`;
    const tf = y => log ? Math.log10(Math.max(y, 1e-12)) : y;
    const xs = pts.map(p => p[0]), ys = pts.map(p => tf(p[1]));
    const [x0, x1] = [Math.min(...xs), Math.max(...xs) || 1], [y0, y1] = [Math.min(...ys), Math.max(...ys)];
    const X = v => 52 + (v - x0) / ((x1 - x0) || 1) * (w - 62), Y = y => h - 25 - (tf(y) - y0) / ((y1 - y0) || 1) * (h - 45);
    const lines = series.map((s, i) => `<polyline fill="none" stroke="${COLOURS[i % COLOURS.length]}" stroke-width="1.6" data-series="${esc(s.name)}" points="${
      s.points.filter(p => Number.isFinite(p[1])).map(p => `${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(" ")}"/>`).join("");
    const legend = series.map((s, i) => `<tspan fill="${COLOURS[i % COLOURS.length]}">■ ${esc(s.name)} </tspan>`).join("");
    const lab = v => log ? (10 ** v).toExponential(1) : v.toFixed(1);
    return `<svg class="chart" width="${w}" height="${h}" font-size="11" fill="#8b95a3">
      <text x="40" y="14">${esc(title)}</text><text x="${w - 8}" y="28" text-anchor="end">${legend}</text>
      <text x="50" y="${Y(log ? 10 ** y1 : y1) + 4}" text-anchor="end">${lab(y1)}</text>
      <text x="50" y="${h - 25}" text-anchor="end">${lab(y0)}</text>
      <text x="40" y="${h - 8}">${esc(x)} ${x0.toFixed(digits)}</text><text x="${w - 8}" y="${h - 8}" text-anchor="end">${x1.toFixed(digits)}</text>
      <line x1="40" x2="${w - 10}" y1="${h - 25}" y2="${h - 25}" stroke="#2d3440"/>${lines}</svg>`;
  }

  // ---- what the API says about itself (its OpenAPI schema): one place for defaults and limits --
  let openapi = null;
  const schema = async () => (openapi ??= api("/openapi.json"));
  const resolve = (spec, s) => s?.$ref ? spec.components.schemas[s.$ref.split("/").pop()] : s;
  // The form fields of a multipart endpoint (e.g. the stylise options), or null if there is no such endpoint.
  async function formFields(path) {
    const spec = await schema(), op = spec.paths[path]?.post;
    if (!op) return null;
    return resolve(spec, op.requestBody?.content?.["multipart/form-data"]?.schema)?.properties ?? {};
  }
  // The choices of a field: its enum (directly, or in anyOf/allOf), if the schema names them.
  const choices = field => field?.enum ?? (field?.anyOf ?? field?.allOf ?? []).map(s => s.enum).find(Boolean) ?? null;
  // A keyword of a field, also where the field is optional (anyOf: [{...}, {type: null}]).
  const keyword = (field, k) => field?.[k] ?? (field?.anyOf ?? []).map(s => s[k]).find(v => v !== undefined);

  const sleep = ms => new Promise(ok => setTimeout(ok, ms));
  const vname = v => typeof v === "string" ? v : (v.label ?? v.decoder ?? JSON.stringify(v));  // a variant's canonical label
  const overlapPhrase = o => ({uneven: "uneven overlap: checkerboards", even: "even overlap", none: "no overlap"}[o] ?? `${o} overlap`);
  // What measured the style and content distances (the API's quality_measure): one fixed yardstick
  // for every run, or, in jobs measured before it, each run's own loss network.
  const measuredBy = m => ({"vgg19-max": "vgg19-max yardstick", "run-loss-network": "run's loss network, old"}[m] ?? m ?? "");
  const SHIFTS = [1, 2, 3, 4];  // the probe's shift equivariance: eq_t1..eq_t4, PSNR in dB
  const eqLine = a => SHIFTS.map(k => `${k} px ${Number.isFinite(a[`eq_t${k}`]) ? a[`eq_t${k}`].toFixed(1) : "–"}`).join(" · ");
  // The measures an experiment summarises over its seeds, in this order (others the API adds follow).
  const MEASURES = {artifact_p2: "period 2 (dB)", artifact_p4: "period 4 (dB)", artifact_p8: "period 8 (dB)",
    ...Object.fromEntries(SHIFTS.map(k => [`eq_t${k}`, `EQ-T ${k} px (dB)`])),
    style_distance: "style distance", content_distance: "content distance", loss: "final loss"};

  // A job's styles as the API lists them, and where each one's image is.
  const stylesOf = j => j.styles;
  const styleName = s => s.name ?? (s.id.startsWith("builtin:") ? s.id.slice(8) : s.id.slice(0, 8));
  const styleURL = s => s.url ?? s.image_url ??
    (s.id.startsWith("builtin:") ? `/v1/builtin-styles/${encodeURIComponent(s.id.slice(8))}/thumbnail` : `/v1/styles/${s.id}/image`);
  const styleFigure = (s, i, n) => `<figure class="style-figure" data-style-index="${i}"><img data-src="${esc(styleURL(s))}" alt="style ${esc(styleName(s))}">
    <figcaption>${n > 1 ? `style ${i}: ` : "style: "}${esc(styleName(s))}</figcaption></figure>`;

  // Poll a stylisation until it ends; `onProgress(record)` sees each state on the way.
  async function finished(s, onProgress = () => {}) {
    while (s.state === "queued" || s.state === "running") {
      onProgress(s); await sleep(700); s = await api(`/v1/stylizations/${s.id}`);
    }
    if (s.state !== "succeeded") throw Object.assign(new Error(s.error || `stylisation ${s.state}`), {state: s.state});
    return s;
  }

  // ---- the stylise box: images (and a video where the API takes one) with the API's options --
  // Built from the endpoint's own form fields, so an option appears once the API accepts it.
  // `styles`: the network's styles; `every`: offer "each style in turn" (the experiment page).
  async function stylizeBox(root, {imagePath, videoPath = null, styles, every = false, onImages, onVideo}) {
    const fields = await formFields(imagePath) ?? {};
    const video = videoPath && await formFields(videoPath);
    const n = styles.length;
    const strength = fields.strength, colors = fields.colors;
    const strengthBounds = strength && [strength.minimum ?? strength.exclusiveMinimum, strength.maximum ?? strength.exclusiveMaximum];
    root.innerHTML = `
      <label>image(s) <input type="file" class="sb-files" accept="image/*" multiple ${root.dataset.fileId ? `id="${root.dataset.fileId}"` : ""}></label>
      ${video ? `<label>or a video (mp4, webm, mov…) <input type="file" class="sb-video" accept="video/*"></label>` : ""}
      ${n > 1 && fields.style ? `<label>style <select class="sb-style">
          ${every ? `<option value="every">each style in turn</option>` : ""}
          ${styles.map((s, i) => `<option value="${i}">${i}: ${esc(styleName(s))}</option>`).join("")}
          ${fields.mix ? `<option value="mix">a mix…</option>` : ""}</select></label>
        <span class="sb-mix" hidden>${styles.map((s, i) => `<label>${esc(styleName(s))} <input type="number" class="sb-weight" min="0" step="0.1" value="${(1 / n).toFixed(2)}" style="width:80px"></label>`).join("")}</span>` : ""}
      ${strength ? (strengthBounds.every(Number.isFinite)
        ? `<label>strength <span><input type="range" class="sb-strength" min="${strengthBounds[0]}" max="${strengthBounds[1]}" step="0.05" value="${strength.default ?? strengthBounds[1]}"> <output class="sb-strength-value"></output></span></label>`
        : `<label title="${esc(strength.description ?? "")}">strength <input type="number" class="sb-strength" step="0.05" value="${strength.default ?? ""}" placeholder="default" style="width:90px">
            <small>${esc(strength.description ?? "")}</small></label>`) : ""}
      ${colors ? (choices(colors)
        ? `<label>colours <select class="sb-colors">${colors.default === undefined ? `<option value="">default</option>` : ""}${
            choices(colors).map(c => `<option ${c === colors.default ? "selected" : ""}>${esc(c)}</option>`).join("")}</select></label>`
        : `<label title="${esc(colors.description ?? "")}">colours <input class="sb-colors" value="${esc(colors.default ?? "")}" placeholder="default" style="width:110px">
            <small>${esc(colors.description ?? "")}</small></label>`) : ""}
      <button type="button" class="sb-go secondary">stylise again with these options</button>
      <span class="sb-status muted"></span>`;
    const q = sel => root.querySelector(sel);
    const styleSel = q(".sb-style"), status = q(".sb-status");
    const showStrength = () => { if (q(".sb-strength-value")) q(".sb-strength-value").textContent = (+q(".sb-strength").value).toFixed(2); };
    q(".sb-strength")?.addEventListener("input", showStrength); showStrength();
    styleSel?.addEventListener("change", () => { q(".sb-mix").hidden = styleSel.value !== "mix"; });
    // One set of options per request: a list of them when each style goes in turn.
    function options() {
      const base = {};
      if (q(".sb-strength") && q(".sb-strength").value !== "") base.strength = q(".sb-strength").value;
      if (q(".sb-colors") && q(".sb-colors").value !== "") base.colors = q(".sb-colors").value;
      const sel = styleSel?.value;
      if (sel === "every") return styles.map((s, i) => ({...base, style: String(i)}));
      if (sel === "mix") return [{...base, mix: [...root.querySelectorAll(".sb-weight")].map(i => i.value || "0").join(",")}];
      return [sel === undefined ? base : {...base, style: sel}];
    }
    const describe = o => [o.mix ? `mix ${o.mix}` : (o.style !== undefined && n > 1 ? styleName(styles[+o.style]) : null),
      o.strength !== undefined && (strength?.default === undefined || +o.strength !== +strength.default) ? `strength ${(+o.strength).toFixed(2)}` : null,
      o.colors && o.colors !== colors?.default ? `${o.colors} colours` : null].filter(Boolean).join(" · ");
    const form = (files, name, o) => {
      const fd = new FormData();
      for (const f of files) fd.append(name, f);
      for (const [k, v] of Object.entries(o)) fd.append(k, v);
      return fd;
    };
    async function go() {
      const images = [...q(".sb-files").files], clip = q(".sb-video")?.files[0];
      if (!images.length && !clip) { status.textContent = "choose an image (or a video) first"; status.className = "sb-status error"; return; }
      status.className = "sb-status muted";
      try {
        if (images.length) {
          status.textContent = "stylising…";
          await onImages(options().map(o => ({options: o, label: describe(o), body: form(images, "files", o)})), status);
          status.textContent = `${images.map(f => f.name).join(", ")}: done`;
        }
        if (clip) {
          const fileField = Object.entries(video).find(([, f]) => f.format === "binary" || f.items?.format === "binary")?.[0] ?? "file";
          const o = options()[0];
          await onVideo(form([clip], fileField, o), describe(o), status);
        }
      } catch (err) { status.textContent = err.message; status.className = "sb-status error"; }
    }
    q(".sb-files").addEventListener("change", go);
    q(".sb-video")?.addEventListener("change", go);
    q(".sb-go").addEventListener("click", go);
  }

  // A stylised video: progress while it runs (and a button to cancel it), then the mp4 and its
  // flicker beside the input's.
  async function showVideo(out, started, label) {
    out.insertAdjacentHTML("beforeend", `<figure class="video-result"><div class="bar"><div style="width:0%"></div></div>
      <figcaption class="muted">video: queued</figcaption>
      <button type="button" class="secondary video-cancel">cancel</button></figure>`);
    const fig = out.lastElementChild, cap = fig.querySelector("figcaption"), cancel = fig.querySelector(".video-cancel");
    // Queued: cancelled at once; running: its worker stops it at the next heartbeat (the poll below sees it end).
    cancel.addEventListener("click", async () => {
      cancel.disabled = true;
      try { await api(`/v1/stylizations/${started.id}/cancel`, {method: "POST"}); cap.textContent = "video: cancelling…"; }
      catch (err) { cap.textContent = err.message; cancel.disabled = false; }
    });
    let s;
    try {
      s = await finished(started, r => {
        const p = r.progress ?? {};
        if (p.total) fig.querySelector(".bar > div").style.width = `${100 * p.done / p.total}%`;
        cap.textContent = `video: ${r.cancel_requested ? "cancelling" : r.state}${p.total ? `, frame ${p.done} of ${p.total}` : ""}`;
      });
    } catch (err) {
      if (err.state !== "cancelled") throw err;
      cap.textContent = "video: cancelled";
      return;
    } finally { cancel.remove(); }
    fig.querySelector(".bar > div").style.width = "100%";
    const r = await authFetch(s.outputs[0].url);
    if (!r.ok) throw new Error(`${s.outputs[0].url}: ${r.status}`);
    const f = s.flicker ?? {};
    const fl = v => Number.isFinite(v) ? v.toPrecision(3) : "–";
    fig.insertAdjacentHTML("afterbegin", `<video controls loop muted src="${URL.createObjectURL(await r.blob())}"></video>`);
    const o = s.outputs[0];
    cap.textContent = `video${label ? ` ${label}` : ""}: ${o.frames ?? s.progress?.total ?? "?"} frames${o.fps ? ` at ${(+o.fps).toFixed(2)} fps` : ""}, ${o.width}×${o.height}` +
      `${o.has_audio ? ", audio kept" : ""} · flicker: input ${fl(f.input)}, output ${fl(f.output)} (8-bit levels between frames where the input stands still; lower: steadier)`;
  }

  // ---- the index page: submit, and lists with live progress --------------------------------
  // The form's defaults and limits are the API's own (one place: the training config).
  async function settingsFromSchema(form) {
    const spec = await schema(), props = spec.components.schemas.JobCreate.properties;
    const experimentProps = spec.components.schemas.ExperimentCreate?.properties ?? {};
    for (const input of form.querySelectorAll("[data-setting], [data-experiment-setting]")) {
      const field = (input.dataset.experimentSetting !== undefined ? experimentProps : props)[input.name];
      if (!field) { input.closest("label").hidden = true; input.disabled = true; continue; }  // not taken by this server
      if (input.tagName === "SELECT") input.innerHTML = (choices(field) ?? [field.default]).map(c => `<option>${esc(c)}</option>`).join("");
      if (input.type === "checkbox") input.checked = !!field.default; else input.value = field.default;
      if (field.minimum !== undefined) input.min = field.minimum;
      if (field.exclusiveMinimum !== undefined) input.min = field.exclusiveMinimum;
      if (field.maximum !== undefined) input.max = field.maximum;
    }
    return props;
  }

  // Ticked values of an axis (downsample, loss pooling): checkboxes when the API names the
  // choices, else one text field holding the schema's default.
  function axisChoices(el, field, names, describe = () => "") {
    const axis = el.dataset.axis;
    if (!field) { el.hidden = true; return; }
    const title = `<span class="muted">${esc(el.dataset.title)}</span><br>`;
    el.innerHTML = names.length ? title + names.map(n => `<label class="check"><input type="checkbox" name="${axis}" value="${esc(n)}" ${n === field.default ? "checked" : ""}>
        ${esc(n)} <span class="muted">${esc(describe(n))}</span></label>`).join("")
      : `<label>${esc(el.dataset.title)} <input name="${axis}" value="${esc(field.default)}"></label>`;
  }
  const ticked = (form, axis) => [...form.querySelectorAll(`[name=${axis}]`)].filter(i => i.type !== "checkbox" || i.checked)
    .map(i => i.value.trim()).filter(Boolean);

  return {
    $, fmt, esc, apiKey, authFetch, api, showImages, ViewGroup, viewerHTML, chart, schema,
    formFields, choices, keyword, sleep, vname, overlapPhrase, measuredBy, SHIFTS, eqLine,
    MEASURES, stylesOf, styleName, styleURL, styleFigure, finished, stylizeBox, showVideo,
    settingsFromSchema, axisChoices, ticked,
  };
})();
