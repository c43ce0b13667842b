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

  // A job's styles as the API lists them (older servers: only style_id), and where each one's image is.
  const stylesOf = j => j.styles?.length ? j.styles : [{id: j.style_id, name: null}];
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

  async function index() {
    const decoders = await api("/v1/decoders");
    const downsamples = await api("/v1/downsamples").catch(() => []);  // the encoder's downsampling kinds (older servers: none)
    const builtin = await api("/v1/builtin-styles").catch(() => []);
    const form = $("#experiment-form");
    const props = await settingsFromSchema(form);
    const maxStyles = props.style_ids ? keyword(props.style_ids, "maxItems") ?? Infinity : 1;
    $("#decoders").innerHTML = decoders.map(d => `<label class="check">
      <input type="checkbox" name="decoder" value="${esc(d.name)}" ${d.name === "deconv" || d.default ? "checked" : ""}>
      ${esc(d.name)} <span class="muted overlap">${esc(overlapPhrase(d.overlap))}</span></label>`).join("");
    axisChoices($("#downsamples"), props.downsample, downsamples.map(d => d.name),
                n => downsamples.find(d => d.name === n)?.layer ?? "");
    axisChoices($("#poolings"), props.loss_pooling, choices(props.loss_pooling) ?? []);

    // Built-in styles: click to pick (several: one multi-style network, in the order picked).
    // The first is picked to start with, so the form trains as it stands; uploading one's own
    // style replaces that first pick unless a thumbnail was clicked.
    let picked = builtin.length ? [builtin[0].id ?? `builtin:${builtin[0].name}`] : [], untouched = true;
    $("#builtin-styles").innerHTML = builtin.map(s => `<button type="button" class="thumb" data-style="${esc(s.id ?? `builtin:${s.name}`)}" title="${esc(s.title ?? s.name)}">
        <img src="${esc(s.thumbnail)}" alt="${esc(s.name)}"><span>${esc(s.name)}</span></button>`).join("");
    const showPicked = () => {
      for (const b of $("#builtin-styles").querySelectorAll(".thumb")) {
        const at = picked.indexOf(b.dataset.style);
        b.setAttribute("aria-pressed", at >= 0); b.dataset.order = at >= 0 && picked.length + form.style.files.length > 1 ? at : "";
      }
      const n = picked.length + form.style.files.length;
      $("#style-count").textContent = !n ? "no style chosen" : n === 1 ? "one style" :
        `${n} styles: one network learns them all (each stylises by its index, or a mix)${n > maxStyles ? `; this server takes at most ${maxStyles}` : ""}`;
    };
    $("#builtin-styles").onclick = e => {
      const b = e.target.closest(".thumb"); if (!b) return;
      untouched = false;
      picked = picked.includes(b.dataset.style) ? picked.filter(x => x !== b.dataset.style) : [...picked, b.dataset.style];
      showPicked();
    };
    form.style.addEventListener("change", () => { if (untouched && form.style.files.length) picked = []; showPicked(); });
    showPicked();

    form.addEventListener("submit", async e => {
      e.preventDefault();
      const f = e.target, status = $("#form-status");
      try {
        const own = [...f.style.files], count = picked.length + own.length;
        if (!count) throw new Error("pick a built-in style or upload a style image");
        if (count > maxStyles) throw new Error(maxStyles === 1 ? "this server trains one style per network: pick one"
                                                                : `at most ${maxStyles} styles in one network; ${count} are picked`);
        const decs = [...f.querySelectorAll("input[name=decoder]:checked")].map(i => i.value);
        if (f.mix.value.trim()) decs.push(f.mix.value.trim());
        const downs = ticked(f, "downsample"), pools = ticked(f, "loss_pooling");
        if (!decs.length) throw new Error("tick at least one decoder");
        if (props.downsample && !downs.length) throw new Error("tick at least one downsampling");
        if (props.loss_pooling && !pools.length) throw new Error("tick at least one loss pooling");
        status.textContent = "uploading…"; status.className = "muted";
        const uploaded = [];
        for (const file of own) {
          const style = new FormData(); style.append("file", file);
          uploaded.push((await api("/v1/styles", {method: "POST", body: style})).id);
        }
        const styleIds = [...picked, ...uploaded];
        let contentId = f.content_set.value || null;  // a set picked from the list, else the files, if any
        if (!contentId && f.content.files.length) {
          const c = new FormData(); for (const file of f.content.files) c.append("files", file);
          contentId = (await api("/v1/content-sets", {method: "POST", body: c})).id;
        }
        const settings = {...(styleIds.length === 1 ? {style_id: styleIds[0]} : {style_ids: styleIds}), content_set_id: contentId};
        for (const input of f.querySelectorAll("[data-setting]:not(:disabled)")) settings[input.name] = input.type === "number" ? +input.value : input.type === "checkbox" ? input.checked : input.value;
        const seeds = f.seeds && !f.seeds.disabled ? +f.seeds.value : 1;
        // Every ticked combination is a variant; an axis with one value is a setting of them all.
        const combos = decs.flatMap(d => (downs.length ? downs : [null]).flatMap(ds => (pools.length ? pools : [null]).map(p => ({decoder: d, downsample: ds, loss_pooling: p}))));
        if (downs.length === 1) settings.downsample = downs[0];
        if (pools.length === 1) settings.loss_pooling = pools[0];
        const variants = downs.length > 1 || pools.length > 1
          ? combos.map(c => Object.fromEntries(Object.entries(c).filter(([, v]) => v !== null))) : decs;
        const post = (path, body) => api(path, {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(body)});
        if (variants.length === 1 && seeds > 1) throw new Error("several seeds compare variants: tick two or more (one variant trains one job)");
        if (variants.length === 1) {  // one variant: a plain training job, followed in the list below and on its page
          const job = await post("/v1/jobs", {...settings, decoder: decs[0]});
          status.innerHTML = `job <a href="job.html?id=${job.id}">${job.id.slice(0, 8)}</a> queued`; status.className = "muted";
          await refresh();
          return;
        }
        const exp = await post("/v1/experiments", {...settings, variants, ...(seeds > 1 ? {seeds} : {})});
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
        <td>${x.variants.map(v => esc(vname(v))).join(" vs ")}${x.seeds > 1 ? ` <span class="muted">× ${x.seeds} seeds</span>` : ""}</td><td class="state-${x.state}">${x.state}</td><td>${x.created_at.slice(0, 19)}</td></tr>`).join("");
      $("#jobs tbody").innerHTML = jobs.map(j => `<tr data-job="${j.id}"><td><a href="job.html?id=${j.id}">${j.id.slice(0, 8)}</a></td><td>${esc(j.decoder)}</td>
        <td>${stylesOf(j).map(s => esc(styleName(s))).join(", ")}</td>
        <td class="state-${j.state}">${j.state}${j.error ? `: ${esc(j.error)}` : ""}</td>
        <td><div class="bar"><div style="width:${100 * j.step / j.steps}%"></div></div>${j.step}/${j.steps}</td>
        <td>${j.losses.loss?.toExponential(3) ?? "–"}</td><td>${fmt(j.artifacts.artifact_p2)}</td><td>${j.seconds_per_step?.toFixed(2) ?? "–"}</td></tr>`).join("");
    }
    await refresh(); setInterval(refresh, 2000);
  }


  // ---- a job's page: progress, curves, its style(s) beside its outputs, stylising ---------------
  async function job(id) {
    const group = ViewGroup(), own = ViewGroup();
    let j = null, shown = false;
    $("#title").textContent = `job ${id}`;
    const dist = x => Number.isFinite(x) ? x.toPrecision(3) : "–";

    function renderSummary() {
      $("#state").textContent = j.state; $("#state").className = `state-${j.state}`;
      const c = j.config ?? {};
      const setting = (k, v) => v === undefined || v === null ? "" : `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`;
      $("#summary").innerHTML = `<div class="bar wide"><div style="width:${100 * j.step / j.steps}%"></div></div>
        <p><b>${j.step} / ${j.steps}</b> steps · <span class="state-${j.state}">${j.state}</span>${j.error ? `: <span class="error">${esc(j.error)}</span>` : ""}
          · ${j.seconds_per_step?.toFixed(2) ?? "–"} s/step · loss ${j.losses.loss?.toExponential(3) ?? "–"}
          · period 2 ${fmt(j.artifacts.artifact_p2)} dB, period 4 ${fmt(j.artifacts.artifact_p4)} dB, period 8 <span id="period8">${fmt(j.artifacts.artifact_p8)}</span> dB
          · style distance ${dist(j.quality?.style_distance)}, content distance ${dist(j.quality?.content_distance)}${
            j.quality?.quality_measure ? ` <span class="muted" id="quality-measure">(${esc(measuredBy(j.quality.quality_measure))})</span>` : ""}</p>
        <p id="eq-t">shift equivariance, EQ-T (PSNR of the output of a shifted input against the shifted output; higher: steadier): ${eqLine(j.artifacts)} dB</p>
        <table class="settings">${setting("decoder", j.decoder)}${setting("downsample", c.downsample)}${setting("loss pooling", c.loss_pooling)}
          ${setting("precision", c.precision && (j.trained_precision ? `${c.precision}: trained in ${j.trained_precision}` : c.precision))}
          ${setting("stability weight", c.stability_weight)}${setting("stability shifts", c.stability_shift)}${setting("filtered ReLUs", c.filtered_relu === undefined ? undefined : c.filtered_relu ? "yes" : "no")}${setting("crop size", c.size)}${setting("batch", c.batch)}${setting("seed", c.seed)}
          ${setting("style weight", c.style_weight)}${setting("styles", stylesOf(j).map(styleName).join(", "))}</table>
        <p>${Object.entries(j.links).filter(([k]) => k !== "self").map(([k, u]) => `<a href="#" data-download="${esc(u)}" data-name="${esc(k)}">${esc(k)}</a>`).join(" · ")}${
          j.state === "succeeded" && j.links.onnx ? ` · <a id="live-link" href="live.html?id=${encodeURIComponent(id)}">Run in this browser</a> <span class="muted">(the ONNX network, live on the webcam or your files)</span>` : ""}</p>`;
    }

    function renderCurves() {
      const probe = key => [{name: j.decoder, points: j.artifact_curve.map(r => [r.step, r[key]])}];
      $("#curves").innerHTML = chart("loss", [{name: "loss", points: j.loss_curve.map(r => [r.step, r.loss])}], {log: true}) +
        chart("period-2 score of the probe (dB)", probe("artifact_p2")) + chart("period-4 score (dB)", probe("artifact_p4")) +
        chart("period-8 score (dB)", probe("artifact_p8")) +
        chart("shift equivariance EQ-T (dB; higher is better)", SHIFTS.map(k => ({name: `${k} px`, points: j.artifact_curve.map(r => [r.step, r[`eq_t${k}`]])}))) +
        chart("style distance (lower is better)", probe("style_distance"), {log: true}) +
        chart("content distance (lower is better)", probe("content_distance"), {log: true});
    }

    function renderOutputs() {
      const styles = stylesOf(j);
      $("#styles").innerHTML = styles.map((s, i) => styleFigure(s, i, styles.length)).join("");
      showImages($("#styles"));
      if (!j.panel.length) { $("#views").innerHTML = `<p class="muted">The network's outputs on the panel photos appear here when it has finished.</p>`; return; }
      // one viewer per panel photo (and per style, where the API lists the panel per style)
      const panels = j.style_panels?.length > 1 ? j.style_panels.flatMap(sp => sp.panel.map(p => ({...p, style: sp.style}))) : j.panel;
      $("#views").innerHTML = panels.map(p => viewerHTML(p.url, `${p.name}${p.style !== undefined && styles.length > 1 ? ` · ${styleName(styles[p.style])}` : ""}` +
        `${Number.isFinite(p.period2_db) ? ` · p2 ${fmt(p.period2_db)} dB · p4 ${fmt(p.period4_db)} dB` : ""}`)).join("");
      group.reset();
      $("#views").querySelectorAll(".viewer").forEach(v => group.attach(v));
      showImages($("#views"));
      $("#views img").addEventListener("load", () => group.fit(), {once: true});
    }

    async function load() {
      j = await api(`/v1/jobs/${id}`);
      renderSummary(); renderCurves();
      if (!shown && (j.panel.length || !["queued", "running"].includes(j.state))) {
        shown = true; renderOutputs();
        if (j.state === "succeeded") await stylizeBox($("#stylize"), {
          imagePath: "/v1/jobs/{job_id}/stylize", videoPath: "/v1/jobs/{job_id}/stylize-video", styles: stylesOf(j),
          async onImages(requests) {
            const results = [];
            for (const r of requests) {
              const s = await finished(await api(`/v1/jobs/${id}/stylize`, {method: "POST", body: r.body}));
              results.push(...s.outputs.map(o => ({url: o.url, label: r.label})));
            }
            own.reset();
            $("#own-views").innerHTML = results.map(r => viewerHTML(r.url, r.label || "stylised")).join("");
            $("#own-views").querySelectorAll(".viewer").forEach(v => own.attach(v));
            showImages($("#own-views"));
            $("#own-views img").addEventListener("load", () => own.fit(), {once: true});
          },
          async onVideo(body, label) {
            await showVideo($("#own-video"), await api(`/v1/jobs/${id}/stylize-video`, {method: "POST", body}), label);
          },
        });
        else $("#stylize").innerHTML = `<p class="muted">Stylising needs the finished network (this job is ${esc(j.state)}).</p>`;
      } else if (!shown) renderOutputs();
      if (j.state === "queued" || j.state === "running") setTimeout(load, 1500);
    }

    $("#summary").addEventListener("click", async e => {  // downloads carry the API key, so through a blob
      const u = e.target.dataset?.download; if (!u) return;
      e.preventDefault();
      const r = await authFetch(u);
      const a = document.createElement("a"); a.href = URL.createObjectURL(await r.blob()); a.download = `${id}-${e.target.dataset.name}`; a.click();
    });
    $("#zoom-fit").onclick = () => group.fit();
    $("#zoom-1").onclick = () => group.zoomTo(1);
    $("#zoom-8").onclick = () => group.zoomTo(8);
    await load();
  }

  // ---- the experiment page -------------------------------------------------------------------
  async function experiment(id) {
    const group = ViewGroup(), own = ViewGroup();
    let exp = null, mode = "side", panel = null, fitted = false, style = 0;
    const label = v => v.label ?? v.decoder;
    // A variant's output on a panel photo (for the style shown, where the panel lists one per style).
    const item = (v, name) => (v.style_panels?.find(sp => sp.style === style)?.panel ?? v.panel).find(p => p.name === name)
      ?? v.panel.find(p => p.name === name);
    $("#title").textContent = `experiment ${id}`;

    const dist = x => Number.isFinite(x) ? x.toPrecision(3) : "–";  // absent in jobs trained before it was measured
    const runsOf = v => v.runs?.length ? v.runs : [{seed: v.config?.seed, state: v.state, step: v.step, steps: v.steps}];
    function renderTable() {
      $("#scores tbody").innerHTML = exp.variants.map(v => {
        const p = item(v, panel);
        const init = v.scores.init, now = v.scores.final;
        const cls = x => x === undefined || x === null ? "" : (x > 0 ? "score-bad" : "score-good");
        const runs = runsOf(v), step = runs.reduce((a, r) => a + r.step, 0), steps = runs.reduce((a, r) => a + r.steps, 0);
        return `<tr data-decoder="${esc(v.decoder)}"><td>${esc(label(v))}</td><td class="state-${v.state}">${v.state}${v.error ? `: ${esc(v.error)}` : ""}</td>
          <td><div class="bar"><div style="width:${100 * step / steps}%"></div></div>${step}/${steps}${runs.length > 1 ? ` <span class="muted">(${runs.length} seeds)</span>` : ""}</td>
          <td>${v.seconds_per_step?.toFixed(2) ?? "–"}</td>
          <td class="${cls(init?.artifact_p2)}">${fmt(init?.artifact_p2)}</td><td class="${cls(init?.artifact_p4)}">${fmt(init?.artifact_p4)}</td>
          <td class="${cls(now?.artifact_p2)}">${fmt(now?.artifact_p2)}</td><td class="${cls(now?.artifact_p4)}">${fmt(now?.artifact_p4)}</td>
          <td class="period8 ${cls(now?.artifact_p8)}">${fmt(now?.artifact_p8)}</td>
          <td class="eq-t">${now ? eqLine(now) : "–"}</td>
          <td class="panel-score">${p ? `${fmt(p.period2_db)} / ${fmt(p.period4_db)}` : "–"}</td>
          <td class="style-distance">${dist(init?.style_distance)} → ${dist(now?.style_distance)}</td>
          <td class="content-distance">${dist(init?.content_distance)} → ${dist(now?.content_distance)}</td>
          <td class="quality-measure muted">${esc(measuredBy(v.quality_measure))}</td>
          <td>${v.losses.loss?.toExponential(3) ?? "–"}</td></tr>`;
      }).join("");
      renderSeeds();
    }

    // Each measure over the seeds: the mean ± the half-width of its 95% interval (the API's), and
    // which variants differ: only those whose intervals do not overlap (exp.differences).
    function renderSeeds() {
      const n = exp.seeds?.length ?? 1, summaries = exp.variants.map(v => v.summary ?? {});
      const keys = [...new Set([...Object.keys(MEASURES), ...summaries.flatMap(s => Object.keys(s))])].filter(k => summaries.some(s => s[k]));
      const differ = (exp.differences ?? []).filter(d => d.differ);
      const value = (k, x) => k.startsWith("artifact_") || k.startsWith("eq_t") ? x.toFixed(2) : x.toPrecision(3);
      const cell = (v, k) => {
        const m = v.summary?.[k]; if (!m) return `<td>–</td>`;
        const others = differ.filter(d => d.measure === k && (d.a === label(v) || d.b === label(v))).map(d => d.a === label(v) ? d.b : d.a);
        const half = m.low === null ? "" : ` ± ${value(k, (m.high - m.low) / 2)}`;
        return `<td data-measure="${k}" class="${others.length ? "differs" : ""}" title="${others.length ? `differs from ${esc(others.join(", "))}` : ""}">${value(k, m.mean)}${half}${others.length ? " ◆" : ""}</td>`;
      };
      $("#seed-summary thead").innerHTML = `<tr><th>variant</th><th>seeds done</th>${keys.map(k => `<th>${esc(MEASURES[k] ?? k)}</th>`).join("")}</tr>`;
      $("#seed-summary tbody").innerHTML = exp.variants.map(v => `<tr><td>${esc(label(v))}</td>
        <td>${runsOf(v).filter(r => r.state === "succeeded").length} of ${runsOf(v).length}</td>${keys.map(k => cell(v, k)).join("")}</tr>`).join("");
      const names = ms => ms.map(m => MEASURES[m] ?? m).join(", ");
      const pairs = [...new Map(differ.map(d => [JSON.stringify([d.a, d.b]), [d.a, d.b]])).values()];
      $("#differences").innerHTML = n < 2
        ? `One seed (${esc(exp.seeds?.[0] ?? "")}): no intervals, so no variant is called different; an experiment with seeds ≥ 2 tells a difference from the spread between seeds.`
        : !(exp.differences ?? []).length ? `The intervals appear once two or more seeds of a variant have finished.`
        : pairs.length ? pairs.map(([a, b]) => `<b>${esc(a)}</b> and <b>${esc(b)}</b> differ on ${esc(names(differ.filter(d => d.a === a && d.b === b).map(d => d.measure)))}`).join("; ") +
            ". Elsewhere their intervals overlap: not shown to differ at this many seeds."
        : `No two variants differ on any measure at ${n} seeds: every pair of intervals overlaps.`;
    }

    function renderViews() {
      const views = $("#views");
      group.reset();
      $("#swipe-control").hidden = mode !== "swipe";
      if (!exp.panel.length) { views.innerHTML = `<p class="muted">The outputs appear here when every variant has finished.</p>`; return; }
      const img = i => item(exp.variants[i], panel).url;
      const cap = i => { const p = item(exp.variants[i], panel);
        return `${label(exp.variants[i])} · p2 ${fmt(p.period2_db)} dB · p4 ${fmt(p.period4_db)} dB`; };
      if (mode === "side") {
        views.innerHTML = exp.variants.map((v, i) => viewerHTML(img(i), cap(i))).join("");
      } else if (mode === "swipe") {
        views.innerHTML = `<div class="viewer" id="swipe-viewer"><div class="layer"><img data-src="${esc(img(1))}" draggable="false"></div>
          <div class="layer" id="swipe-top"><img data-src="${esc(img(0))}" draggable="false"></div>
          <span class="caption">left: ${esc(label(exp.variants[0]))} · right: ${esc(label(exp.variants[1]))}</span></div>`;
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
      $("#spectra").innerHTML = exp.spectra[panel].map((u, i) => `<figure><img data-src="${esc(u)}" alt="spectrum ${esc(label(exp.variants[i]))}">
          <figcaption>${esc(label(exp.variants[i]))}</figcaption></figure>`).join("") +
        diffs.map(c => `<figure><img data-src="${esc(c.difference_spectrum_url)}" alt="difference spectrum"><figcaption>${esc(c.a)} − ${esc(c.b)} (dB)</figcaption></figure>`).join("");
      showImages($("#spectra"));
      renderProfile();
    }

    // The radial power spectrum of each variant's stylised panel photo (Durall et al. 2020): power
    // per frequency, averaged over every direction; a checkerboard is a bump at the high end.
    function renderProfile() {
      const profile = v => { const p = v.spectrum_profile; return p?.freqs ? p : p?.[panel]; };
      const series = exp.variants.filter(profile).map(v => ({name: label(v), points: profile(v).freqs.map((f, k) => [f, profile(v).power[k]])}));
      $("#spectrum-profile").innerHTML = series.length
        ? chart(`radial power spectrum of the stylised ${exp.variants.find(profile).spectrum_profile.photo ?? "photo"} (log power)`, series, {w: 560, h: 260, log: true, x: "cycles/pixel", digits: 2})
        : `<p class="muted">${exp.state === "running" ? "After training." : "This server does not compute the 1-D spectrum."}</p>`;
    }

    // The style image(s) beside the stylised photos: what the networks were asked to paint.
    function renderStyles() {
      const styles = stylesOf(exp.variants[0] ?? exp);
      $("#styles").innerHTML = styles.map((s, i) => styleFigure(s, i, styles.length)).join("");
      $("#styles").querySelectorAll("figure").forEach(f => f.classList.toggle("shown", styles.length > 1 && +f.dataset.styleIndex === style));
      showImages($("#styles"));
      const perStyle = exp.variants.some(v => (v.style_panels?.length ?? 0) > 1);  // the panel once per style
      const pick = $("#style-pick");
      $("#style-pick-label").hidden = !(styles.length > 1 && perStyle);
      if (styles.length > 1 && perStyle && !pick.options.length) pick.innerHTML = styles.map((s, i) => `<option value="${i}">${esc(styleName(s))}</option>`).join("");
    }

    function renderCurves() {
      const loss = exp.variants.map(v => ({name: label(v), points: v.loss_curve.map(r => [r.step, r.loss])}));
      // The probe's rows: artifact scores, and style/content distance (missing in older jobs' rows: no line).
      const probe = key => exp.variants.map(v => ({name: label(v), points: v.artifact_curve.map(r => [r.step, r[key]])}));
      $("#curves").innerHTML = chart("loss", loss, {log: true}) + chart("period-2 score of the probe (dB)", probe("artifact_p2")) +
        chart("period-4 score (dB)", probe("artifact_p4")) + chart("period-8 score (dB)", probe("artifact_p8")) +
        chart("shift equivariance at 1 px, EQ-T (dB; higher is better)", probe("eq_t1")) +
        chart("style distance (lower is better)", probe("style_distance"), {log: true}) +
        chart("content distance (lower is better)", probe("content_distance"), {log: true});
    }

    let boxed = false;
    async function load() {
      exp = await api(`/v1/experiments/${id}`);
      renderStyles();
      $("#state").textContent = exp.state; $("#state").className = `state-${exp.state}`;
      const select = $("#panel");
      if (exp.panel.length && !panel) {
        panel = exp.panel[0];
        select.innerHTML = exp.panel.map(n => `<option>${esc(n)}</option>`).join("");
        renderViews(); renderSpectra();
      } else if (!exp.panel.length) renderViews();
      renderTable(); renderCurves(); renderProfile();
      if (exp.state === "running") setTimeout(load, 1500);
      else if (!boxed) { boxed = true; await ownBox(); }
    }

    $("#panel").onchange = e => { panel = e.target.value; renderTable(); renderViews(); renderSpectra(); };
    $("#style-pick").onchange = e => { style = +e.target.value; renderStyles(); renderTable(); renderViews(); renderSpectra(); };
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
    // One's own image through every variant, with the stylise options; a multi-style network
    // can go through each of its styles in turn (a row per style, a column per variant).
    async function ownBox() {
      if (exp.state !== "succeeded") { $("#own-box").innerHTML = `<p class="muted">Stylising needs every variant finished (this experiment is ${esc(exp.state)}).</p>`; return; }
      const styles = stylesOf(exp.variants[0]);
      await stylizeBox($("#own-box"), {
        imagePath: "/v1/experiments/{experiment_id}/stylize", styles, every: true,
        async onImages(requests, status) {
          status.textContent = `stylising with every variant${requests.length > 1 ? `, ${requests.length} styles` : ""}…`;
          const rows = [];
          for (const r of requests) {
            const reqs = await api(`/v1/experiments/${id}/stylize`, {method: "POST", body: r.body});
            const done = await Promise.all(reqs.map(async q => {
              const s = await finished(q.stylization).catch(err => { throw new Error(`${q.label ?? q.decoder}: ${err.message}`); });
              return {name: q.label ?? q.decoder, url: s.outputs[0].url};
            }));
            rows.push({options: r.options, label: r.label, done});
          }
          own.reset();
          $("#own-views").innerHTML = rows.map(row => `${rows.length > 1 ? `<h3 class="style-row">${
              row.options.style !== undefined ? styleFigure(styles[+row.options.style], +row.options.style, styles.length) : ""}${esc(row.label)}</h3>` : ""}
            <div class="views">${row.done.map(d => viewerHTML(d.url, row.label && rows.length === 1 ? `${d.name} · ${row.label}` : d.name)).join("")}</div>`).join("");
          $("#own-views").querySelectorAll(".viewer").forEach(v => own.attach(v));
          showImages($("#own-views"));
          $("#own-views .viewer img").addEventListener("load", () => own.fit(), {once: true});
        },
      });
    }
    await load();
  }

  return {index, experiment, job, ViewGroup, chart};
})();
