// A job's page: progress, curves, its style(s) beside its outputs, stylising.
(() => {
  const {$, fmt, esc, authFetch, api, showImages, ViewGroup, viewerHTML, chart, measuredBy, SHIFTS, eqLine, stylesOf, styleName, styleFigure, finished, stylizeBox, showVideo} = Checkerless;

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

  Checkerless.job = job;
})();
