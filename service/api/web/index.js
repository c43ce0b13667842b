// The index page: the submit form and the lists of jobs, experiments, styles and content sets.
(() => {
  const {$, fmt, esc, api, choices, keyword, vname, overlapPhrase, stylesOf, styleName, settingsFromSchema, axisChoices, ticked} = Checkerless;

  async function index() {
    const decoders = await api("/v1/decoders");
    const downsamples = await api("/v1/downsamples");  // the encoder's downsampling kinds
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

  Checkerless.index = index;
})();
