// Small progressive enhancements: immediate validation, archive status, the live alert queue.
"use strict";

function debounce(fn, ms) {
  let timer;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

function setupScreeningForm(form) {
  const touched = new Set();
  const status = document.getElementById("check-status");
  const show = (field, reason) => {
    for (const m of form.querySelectorAll(".message")) {
      const name = m.id.slice(2);
      const input = document.getElementById("f-" + name);
      const own = name === field;
      m.textContent = own ? reason : (input && touched.has(name) && !input.validity.valid ? input.validationMessage : "");
      if (input) {
        input.setAttribute("aria-invalid", own || (touched.has(name) && !input.validity.valid) ? "true" : "false");
        input.closest(".field").classList.toggle("invalid", input.getAttribute("aria-invalid") === "true");
      }
    }
  };
  const check = debounce(async () => {
    const fields = {};
    for (const el of form.elements) {
      if (!el.name || el.name === "csrf") continue;
      fields[el.name] = el.type === "checkbox" ? (el.checked ? "true" : "false") : el.value;
    }
    const response = await fetch("/web/doctor/screening/check", {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": form.dataset.csrf},
      body: JSON.stringify({kind: form.dataset.kind, fields, touched: [...touched]}),
    });
    if (!response.ok) return;
    const result = await response.json();
    show(result.field, result.reason || "");
    status.textContent = result.ok ? status.dataset.okText : "";
    form.dataset.checked = result.ok ? "ok" : (result.field || "pending");
  }, 250);
  form.addEventListener("input", (e) => { if (e.target.name) touched.add(e.target.name); check(); });
  form.addEventListener("change", (e) => { if (e.target.name) touched.add(e.target.name); check(); });
}

// The single screening form: the student is looked up on the roster by number or name, and the
// roster's sex and date of birth are filled in (still editable for a pupil not on the roster).
function setupRosterLookup(form) {
  const number = document.getElementById("f-student_number");
  const list = document.getElementById("roster-matches");
  const found = document.getElementById("roster-found");
  if (!number || !list || !found) return;
  let matches = [];
  const search = debounce(async () => {
    const q = number.value.trim();
    if (!q) return;
    const response = await fetch("/web/doctor/roster/lookup?q=" + encodeURIComponent(q), {credentials: "same-origin"});
    if (!response.ok) return;
    matches = (await response.json()).students;
    list.replaceChildren(...matches.map((s) => {
      const option = document.createElement("option");
      option.value = s.number;
      option.label = [s.name, s.grade_class, s.school_name].filter(Boolean).join(" · ");
      return option;
    }));
    choose();
  }, 200);
  const choose = () => {
    const s = matches.find((m) => m.number.toUpperCase() === number.value.trim().toUpperCase());
    if (!s) { found.textContent = number.value.trim() ? found.dataset.none : found.textContent; form.dataset.student = ""; return; }
    found.textContent = [s.name, s.grade_class, s.age, s.school_name].filter(Boolean).join(" · ");
    form.dataset.student = s.number;
    if (s.sex) document.getElementById("f-sex").value = s.sex;
    if (s.birth_date) document.getElementById("f-birth_date").value = s.birth_date;
    const school = document.getElementById("f-school_id");
    if (school && s.school_id) school.value = s.school_id;
    form.dispatchEvent(new Event("change"));
  };
  number.addEventListener("input", search);
  number.addEventListener("change", search);
}

function setupArchiveStatus(el) {
  const poll = async () => {
    const response = await fetch(el.dataset.url, {credentials: "same-origin"});
    if (response.ok && (await response.json()).archived) {
      el.textContent = "✓ " + el.dataset.doneText;
      el.dataset.archived = "true";
      return;
    }
    setTimeout(poll, 1000);
  };
  poll();
}

let audio = null;
function beep() {
  try {
    audio = audio || new (window.AudioContext || window.webkitAudioContext)();
    if (audio.state === "suspended") audio.resume();
    const now = audio.currentTime;
    for (const [offset, freq] of [[0, 880], [0.25, 660], [0.5, 880]]) {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.25, now + offset);
      gain.gain.exponentialRampToValueAtTime(0.001, now + offset + 0.2);
      osc.connect(gain).connect(audio.destination);
      osc.start(now + offset);
      osc.stop(now + offset + 0.2);
    }
    document.body.dataset.beeps = String(Number(document.body.dataset.beeps || 0) + 1);
    document.body.dataset.audioState = audio.state;
  } catch (error) {
    document.body.dataset.audioError = String(error);
  }
}

function sortQueue(tbody) {
  const rows = [...tbody.rows];
  rows.sort((a, b) => (Number(a.dataset.rank) - Number(b.dataset.rank))
    || a.dataset.deadline.localeCompare(b.dataset.deadline));
  for (const row of rows) tbody.appendChild(row);
}

function setupQueue(table) {
  const tbody = table.tBodies[0];
  const live = document.getElementById("live-status");
  const banner = document.getElementById("urgent-banner");
  const empty = document.getElementById("queue-empty");
  const sound = document.getElementById("sound");
  sound.addEventListener("click", () => {
    audio = audio || new (window.AudioContext || window.webkitAudioContext)();
    audio.resume();
    sound.setAttribute("aria-pressed", "true");
    sound.textContent = sound.dataset.on;
  });
  const source = new EventSource(table.dataset.feed);
  source.onopen = () => { live.textContent = live.dataset.on; live.dataset.live = "connected"; };
  source.onerror = () => { live.textContent = live.dataset.off; live.dataset.live = "reconnecting"; };
  source.addEventListener("alert", async (message) => {
    const alert = JSON.parse(message.data);
    const existing = document.getElementById("alert-" + alert.alert_id);
    const response = await fetch("/web/alerts/" + alert.alert_id + "/row", {credentials: "same-origin"});
    if (response.status === 204) { if (existing) existing.remove(); }
    else if (response.ok) {
      const holder = document.createElement("tbody");
      holder.innerHTML = (await response.text()).trim();
      const row = holder.rows[0];
      if (existing) existing.replaceWith(row); else tbody.appendChild(row);
      sortQueue(tbody);
      if (!existing && alert.priority === "urgent" && alert.state === "open") {
        row.classList.add("arrived");
        banner.hidden = false;
        banner.textContent = table.dataset.newUrgent + ": " + row.cells[1].textContent + " · " + row.cells[4].textContent;
        document.title = "(!) " + document.title.replace(/^\(!\) /, "");
        beep();
      }
    }
    empty.hidden = tbody.rows.length > 0;
  });
}

// The class screening sheet: Enter moves to the next cell (then the next student's first cell);
// a row is saved when the cursor leaves it after a change, or on Enter in its last cell.
function setupClassSheet(table) {
  const progress = document.getElementById("sheet-progress");
  const rows = [...table.tBodies[0].rows];
  const inputs = (row) => [...row.querySelectorAll("input")];
  const showProgress = () => {
    const saved = rows.filter((r) => r.dataset.saved === "true").length;
    progress.textContent = progress.dataset.template.replace("{saved}", saved).replace("{total}", rows.length);
    progress.dataset.saved = String(saved);
  };
  const save = async (row) => {
    if (row.dataset.dirty !== "true") return;
    row.dataset.dirty = "false";
    const cells = {};
    for (const input of inputs(row)) cells[input.name] = input.type === "checkbox" ? (input.checked ? "true" : "") : input.value;
    const status = row.querySelector(".row-status");
    status.textContent = table.dataset.saving;
    row.dataset.state = "saving";
    let result = {ok: false, errors: [{reason: table.dataset.failed}], saved: {}};
    try {
      const response = await fetch("/web/doctor/class-sheet/save", {
        method: "POST", credentials: "same-origin",
        headers: {"Content-Type": "application/json", "X-CSRF-Token": table.dataset.csrf},
        body: JSON.stringify({student_key: row.dataset.student, measured_on: table.dataset.day, cells,
                              sheet: table.dataset.sheet, attempt: table.dataset.attempt}),
      });
      if (response.headers.get("content-type")?.includes("json")) result = await response.json();
    } catch (error) { /* shown as failed below */ }
    const parts = Object.values(result.saved || {});
    const problems = (result.errors || []).map((e) => e.reason);
    for (const input of inputs(row)) {
      const bad = (result.errors || []).some((e) => e.field === input.name);
      input.setAttribute("aria-invalid", bad ? "true" : "false");
    }
    status.textContent = (result.ok ? "✓ " : "✗ ") + [...parts, ...problems].join(" · ");
    row.dataset.state = result.ok ? "saved" : "error";
    if (result.ok) row.dataset.saved = "true";
    row.dataset.findings = (result.findings || []).join(" ");
    showProgress();
  };
  rows.forEach((row, index) => {
    row.addEventListener("input", () => { row.dataset.dirty = "true"; });
    row.addEventListener("change", () => { row.dataset.dirty = "true"; });
    row.addEventListener("focusout", (event) => {
      if (!row.contains(event.relatedTarget)) save(row);
    });
    row.addEventListener("keydown", (event) => {
      if (event.key !== "Enter") return;
      event.preventDefault();
      const list = inputs(row);
      const at = list.indexOf(event.target);
      if (at >= 0 && at < list.length - 1) { list[at + 1].focus(); list[at + 1].select?.(); return; }
      const next = rows[index + 1];
      if (next) { inputs(next)[0].focus(); } else { save(row); }
    });
  });
  showProgress();
  if (rows.length) inputs(rows.find((r) => r.dataset.saved !== "true") || rows[0])[0].focus();
}

document.addEventListener("DOMContentLoaded", () => {
  const sheet = document.getElementById("class-sheet");
  if (sheet) setupClassSheet(sheet);
  const form = document.getElementById("screening-form");
  if (form) { setupScreeningForm(form); setupRosterLookup(form); }
  const archive = document.getElementById("archive-status");
  if (archive) setupArchiveStatus(archive);
  const queue = document.getElementById("queue");
  if (queue) setupQueue(queue);
  for (const button of document.querySelectorAll("[data-print]")) button.addEventListener("click", () => window.print());
});
