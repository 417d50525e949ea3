// maskgate installer's page: plain JS, no libraries (the door may have no internet).
"use strict";
const $ = (id) => document.getElementById(id);
let csrf = null;
let liveSeq = 0;
let liveUrl = null;
let lastLock = null;
const LOGGED_IN = "maskgate-logged-in"; // this tab logged in: ask the server who we are on reload
let timers = new Set();

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (options.method === "POST") {
    headers["Content-Type"] = "application/json";
    if (csrf) headers["X-CSRF-Token"] = csrf;
  }
  const response = await fetch(path, Object.assign({}, options, { headers, credentials: "same-origin" }));
  if (response.status === 401) { showLogin("Please log in."); throw new Error("401"); }
  return response;
}

function showLogin(message) {
  timers.forEach(clearTimeout); timers.clear();
  sessionStorage.removeItem(LOGGED_IN);
  $("app").hidden = true; $("logout").hidden = true; $("login").hidden = false;
  $("role").textContent = "";
  $("login-error").textContent = message || "";
}

function later(fn, ms) { const t = setTimeout(() => { timers.delete(t); fn(); }, ms); timers.add(t); }

async function start(who) {
  csrf = who.csrf;
  sessionStorage.setItem(LOGGED_IN, "1");
  $("login").hidden = true; $("app").hidden = false; $("logout").hidden = false;
  $("role").textContent = who.role;
  document.body.dataset.role = who.role;
  refreshStatus(); refreshEvents(); refreshLive();
}

async function refreshLive() {
  try {
    const r = await api(`/api/live.jpg?after=${liveSeq}`);
    if (r.ok) {
      liveSeq = Number(r.headers.get("X-Frame-Seq")) || liveSeq;
      const url = URL.createObjectURL(await r.blob());
      $("live").src = url;
      if (liveUrl) URL.revokeObjectURL(liveUrl);
      liveUrl = url;
      $("live").dataset.seq = String(liveSeq);
    }
  } catch (e) { if (e.message === "401") return; }
  // the server keeps to web.live_fps; the page only asks again while it is visible
  later(refreshLive, document.hidden ? 2000 : 100);
}

function fmt(v, unit) { return v === undefined || v === null ? "-" : `${v}${unit || ""}`; }

async function refreshStatus() {
  try {
    const s = await (await api("/api/status")).json();
    $("device").textContent = `${s.device} · door ${s.door}`;
    if (lastLock !== null && s.lock !== lastLock) loadEvents(); // the change is in the list at once
    lastLock = s.lock;
    $("lock").textContent = s.lock;
    $("lock").className = s.lock;
    $("fault").textContent = s.fault || "none";
    $("door").textContent = s.door_open === null ? "no contact wired" : (s.door_open ? "open" : "closed");
    $("fps").textContent = fmt(s.fps, " fps");
    $("infer").textContent = fmt(s.infer_ms, " ms");
    let cpu = s.cpu_temp_c !== undefined ? `${s.cpu_temp_c} °C` : "temperature not reported";
    if (s.throttled) cpu += s.throttled.throttled || s.throttled.under_voltage ? " · THROTTLED" : " · not throttled";
    $("cpu").textContent = cpu;
    $("uptime").textContent = fmt(Math.round(s.uptime_s), " s");
    $("models").textContent = s.models.map((m) => `${m.file} ${m.sha256 || m.error}`).join(", ");
    $("live-info").textContent = `faces narrower than min_face = ${s.min_face} px are ignored (square, bottom left); ` +
      `at most ${s.live_fps} frames/s, only while this page is open`;
  } catch (e) { if (e.message === "401") return; }
  later(refreshStatus, 1000);
}

async function refreshEvents() {
  if (await loadEvents()) later(refreshEvents, 2000);
}

async function loadEvents() {
  try {
    const kind = $("kind").value;
    const data = await (await api(`/api/events?limit=50${kind ? "&kind=" + kind : ""}`)).json();
    const select = $("kind");
    if (select.options.length === 1) {
      for (const k of data.kinds) { const o = document.createElement("option"); o.value = k; o.textContent = k; select.append(o); }
    }
    const body = $("events");
    body.replaceChildren(...data.events.map((e) => {
      const tr = document.createElement("tr");
      tr.className = `event-${e.event}`;
      const when = new Date(e.wall_time * 1000).toLocaleString();
      for (const text of [e.seq, when, e.event, e.detail || "", e.p_mask === undefined ? "" : e.p_mask.toFixed(2)]) {
        const td = document.createElement("td"); td.textContent = String(text); tr.append(td);
      }
      if (e.snapshot) {
        const a = document.createElement("a"); a.textContent = " snapshot";
        a.href = "#"; a.onclick = async (ev) => {
          ev.preventDefault();
          const r = await api(`/api/snapshot?name=${encodeURIComponent(e.snapshot)}`);
          if (r.ok) window.open(URL.createObjectURL(await r.blob()));
        };
        tr.children[3].append(a);
      }
      return tr;
    }));
  } catch (e) { return e.message !== "401"; /* 401: the login form is shown, stop polling */ }
  return true;
}

async function act(action) {
  const out = $("action-result");
  try {
    const r = await api(`/api/actions/${action}`, { method: "POST", body: "{}" });
    const data = await r.json();
    out.textContent = r.ok ? data.done : `refused (${r.status}): ${data.error}`;
    out.className = r.ok ? "" : "error";
  } catch (e) { /* shown by the login form */ }
}

document.addEventListener("DOMContentLoaded", async () => {
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const r = await fetch("/api/login", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token: $("token").value }), credentials: "same-origin" });
    $("token").value = "";
    if (r.ok) start(await r.json());
    else showLogin(r.status === 429 ? "Too many wrong tokens: wait a minute." : "Wrong token.");
  });
  $("logout").addEventListener("click", async () => { await api("/api/logout", { method: "POST", body: "{}" }); showLogin(""); });
  $("kind").addEventListener("change", () => loadEvents());
  document.querySelectorAll("[data-action]").forEach((b) => b.addEventListener("click", () => act(b.dataset.action)));
  // a fresh visit asks nothing before the login (a request without a token counts as a failed one)
  const r = sessionStorage.getItem(LOGGED_IN) ? await fetch("/api/whoami", { credentials: "same-origin" }) : null;
  if (r && r.ok) start(await r.json()); else showLogin("");
});
