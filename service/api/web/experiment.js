// An experiment's page: its variants side by side, their measures with intervals over seeds.
(() => {
  const {$, fmt, esc, api, showImages, ViewGroup, viewerHTML, chart, measuredBy, eqLine, MEASURES, stylesOf, styleName, styleFigure, finished, stylizeBox} = Checkerless;

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

  Checkerless.experiment = experiment;
})();
