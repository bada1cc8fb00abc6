// The dashboard's behaviour: upload, campaign controls, live progress over Server-Sent Events,
// and the do-not-call list. It calls the same /v1 API as scripts, signed in by the session
// cookie; every state-changing request carries the page's CSRF token.
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

async function api(method, path, body) {
  const options = { method, headers: { "X-CSRF-Token": csrf() }, credentials: "same-origin" };
  if (body instanceof FormData) options.body = body;
  else if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error((data.error && data.error.message) || `HTTP ${response.status}`);
  return data;
}

function show(element, message) {
  element.textContent = message;
  element.hidden = !message;
}

// -- upload ---------------------------------------------------------------------------------

// The form's fields are appended to the YAML as `key: <JSON>` lines: JSON values are YAML, and a
// later key wins, so what the form says overrides the same key in the YAML text.
function configText(form) {
  const value = (name) => form.elements[name].value.trim();
  const number = (name) => (value(name) === "" ? undefined : Number(value(name)));
  const lines = [form.elements.yaml.value.replace(/\s+$/, "")];
  const put = (key, v) => { if (v !== undefined && v !== "") lines.push(`${key}: ${JSON.stringify(v)}`); };
  put("name", value("name"));
  put("max_concurrent_calls", number("max_concurrent_calls"));
  put("calls_per_second", number("calls_per_second"));
  put("max_attempts", number("max_attempts"));
  put("greeting", value("greeting"));
  put("instructions", value("instructions"));
  if (value("window_start") || value("window_end")) {
    const window = {};
    if (value("window_start")) window.start = value("window_start");
    if (value("window_end")) window.end = value("window_end");
    lines.push(`calling_window: ${JSON.stringify(window)}`);
  }
  put("ring_timeout_s", number("ring_timeout_s"));
  const delays = {};
  for (const outcome of ["busy", "no_answer", "carrier_error"]) {
    if (value(`retry_${outcome}`) !== "") delays[outcome] = number(`retry_${outcome}`);
  }
  if (Object.keys(delays).length) lines.push(`retry_delay_s: ${JSON.stringify(delays)}`);
  return lines.filter((line) => line !== "").join("\n") + "\n";
}

function setUpUpload() {
  const form = document.getElementById("upload");
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = document.getElementById("upload-error");
    show(error, "");
    const body = new FormData();
    body.append("file", form.elements.file.files[0]);
    body.append("config", configText(form));
    if (form.elements.region.value.trim()) body.append("region", form.elements.region.value.trim());
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const created = await api("POST", "/v1/campaigns", body);
      window.location.href = `/campaigns/${created.campaign_id}`;
    } catch (err) {
      show(error, err.message);
      button.disabled = false;
    }
  });
}

// -- a campaign being ingested -----------------------------------------------------------------

function setUpIngest() {
  const section = document.getElementById("ingest");
  if (!section || section.dataset.state !== "ingesting") return;
  const timer = setInterval(async () => {
    const data = await api("GET", `/v1/campaigns/${section.dataset.campaign}`).catch(() => null);
    if (data && data.state !== "ingesting") {
      clearInterval(timer);
      window.location.reload();
    }
  }, 700);
}

// -- a campaign's live progress ------------------------------------------------------------------

const ACTIONS_BY_STATE = {
  draft: ["start", "cancel"], running: ["pause", "cancel"], paused: ["resume", "cancel"],
  completed: [], cancelled: [],
};
const LABELS = { draft: "ready to start" };

function render(status) {
  const root = document.getElementById("campaign");
  root.dataset.state = status.state;
  const state = document.getElementById("state");
  state.innerHTML = "";
  const badge = document.createElement("span");
  badge.className = `state state-${status.state}`;
  badge.textContent = LABELS[status.state] || status.state;
  state.appendChild(badge);
  document.getElementById("pause-reason").textContent = status.pause_reason ? `Paused: ${status.pause_reason}` : "";
  for (const field of ["final", "in_flight", "pending", "attempts", "contacts"]) {
    document.querySelector(`[data-field="${field}"]`).textContent = status[field].toLocaleString("en-US");
  }
  const done = status.contacts ? (100 * status.final) / status.contacts : 0;
  const bar = document.getElementById("progress-bar");
  bar.style.width = `${done}%`;
  bar.parentElement.setAttribute("aria-valuenow", String(Math.round(done)));
  const most = Math.max(1, ...Object.values(status.outcomes));
  for (const [outcome, count] of Object.entries(status.outcomes)) {
    const row = document.querySelector(`[data-outcome="${outcome}"]`);
    if (!row) continue;
    row.querySelector("[data-count]").textContent = count.toLocaleString("en-US");
    row.querySelector(".bar i").style.width = `${(100 * count) / most}%`;
    row.classList.toggle("zero", count === 0);
  }
  const allowed = ACTIONS_BY_STATE[status.state] || [];
  document.querySelectorAll("#controls button").forEach((button) => {
    button.hidden = !allowed.includes(button.dataset.action);
  });
  const chart = document.getElementById("chart");
  if (status.state === "completed" || status.state === "cancelled") {
    chart.src = `/v1/campaigns/${status.campaign_id}/summary.png?final=${status.final}`;
    chart.hidden = false;
  }
}

let source = null;

function watch(cid) {
  if (source) source.close();
  source = new EventSource(`/v1/campaigns/${cid}/events`);
  source.addEventListener("status", (event) => render(JSON.parse(event.data)));
  source.addEventListener("end", () => { source.close(); source = null; });
}

function setUpCampaign() {
  const root = document.getElementById("campaign");
  if (!root) return;
  const cid = root.dataset.campaign;
  document.querySelectorAll("#controls button").forEach((button) => {
    button.addEventListener("click", async () => {
      const action = button.dataset.action;
      if (action === "cancel" && !window.confirm("Cancel this campaign for good? Contacts not yet called are skipped."))
        return;
      try {
        await api("POST", `/v1/campaigns/${cid}/${action}`);
      } catch (err) {
        window.alert(err.message);
      }
      watch(cid);
    });
  });
  watch(cid);
}

// -- one contact's attempts and transcript -----------------------------------------------------

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function when(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleString() : "";
}

function renderContact(data) {
  const root = document.getElementById("contact");
  root.innerHTML = "";
  const name = Object.values(data.variables).slice(0, 2).join(" ");
  root.appendChild(element("h3", `Row ${data.contact_id}: ${data.phone_e164} ${name}`));
  root.appendChild(element("p", `Outcome: ${data.outcome.replace(/_/g, " ")}; ${data.attempts.length} attempt(s)`));
  const table = element("table", null, "list");
  const head = table.createTHead().insertRow();
  for (const title of ["#", "result", "SIP", "started", "ended", "talk (s)", "disposition"]) {
    head.appendChild(element("th", title));
  }
  const body = table.createTBody();
  for (const attempt of data.attempts) {
    const row = body.insertRow();
    const result = attempt.result || {};
    for (const value of [attempt.seq, attempt.sip_class || (attempt.answered_at ? "answered" : attempt.state),
      attempt.sip_code ? `${attempt.sip_code} ${attempt.sip_status || ""}` : "",
      when(attempt.dial_started_at || attempt.queued_at), when(attempt.ended_at),
      attempt.talk_s ? Number(attempt.talk_s).toFixed(1) : "", result.disposition || ""]) {
      row.appendChild(element("td", value));
    }
  }
  root.appendChild(table);
  for (const attempt of data.attempts) {
    const turns = (attempt.result && attempt.result.transcript) || [];
    if (!turns.length) continue;
    root.appendChild(element("h3", `Transcript of attempt ${attempt.seq}`));
    const list = element("dl", null, "transcript");
    for (const turn of turns) {
      list.appendChild(element("dt", turn.role));
      list.appendChild(element("dd", turn.text));
    }
    root.appendChild(list);
  }
}

function setUpContact() {
  const form = document.getElementById("contact-open");
  const root = document.getElementById("campaign");
  if (!form || !root) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = document.getElementById("contact-error");
    show(error, "");
    try {
      renderContact(await api("GET", `/v1/campaigns/${root.dataset.campaign}/contacts/${form.elements.row.value}`));
    } catch (err) {
      show(error, err.message);
    }
  });
}

// -- the do-not-call list -------------------------------------------------------------------------

function setUpDnc() {
  const form = document.getElementById("dnc-add");
  const error = document.getElementById("dnc-error");
  if (form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const numbers = form.elements.numbers.value.split(/[,;\n]+/).map((n) => n.trim()).filter(Boolean);
      try {
        const result = await api("POST", "/v1/dnc", { numbers, region: form.elements.region.value.trim() || "US" });
        if (result.invalid.length) {
          show(error, result.invalid.map((i) => `${i.value}: ${i.reason}`).join("; "));
        } else {
          window.location.reload();
        }
      } catch (err) {
        show(error, err.message);
      }
    });
  }
  document.querySelectorAll("[data-remove]").forEach((button) => {
    button.addEventListener("click", async () => {
      await api("DELETE", "/v1/dnc", { numbers: [button.dataset.remove] }).catch((err) => show(error, err.message));
      window.location.reload();
    });
  });
}

document.addEventListener("DOMContentLoaded", () => {
  setUpUpload();
  setUpIngest();
  setUpCampaign();
  setUpContact();
  setUpDnc();
});
