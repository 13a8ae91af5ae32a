// MetaChat's web app: a place to write, to look back and to see yourself, on the JSON API.
// One page; the views are addressed by the URL's fragment (#/write, #/timeline, ...), so the
// back button and bookmarks work and the server serves one document.
import { Api, ApiError, query } from "./api.js";
import { barChart, heatMap, moodChart, shares } from "./charts.js";
import { clearErrors, confirmDialog, field, formatDate, h, localDay, showErrors, toast } from "./dom.js";

const api = new Api();
// `notice`: what the sign-in page says next (why the writer is there).
const state = { user: null, etag: null, notice: null };
const main = document.getElementById("main");
const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
let cleanup = [];

// ---- Theme -------------------------------------------------------------------------------

function applyTheme() {
  const theme = localStorage.getItem("metachat.theme") || "system";
  if (theme === "system") document.documentElement.removeAttribute("data-theme");
  else document.documentElement.setAttribute("data-theme", theme);
}

// ---- Routing -----------------------------------------------------------------------------

function route() {
  const raw = location.hash.replace(/^#/, "");
  const hash = raw.startsWith("/") ? raw : "/timeline";
  const [path, search = ""] = hash.split("?");
  const parts = path.split("/").filter(Boolean);
  return { name: parts[0] || "timeline", id: parts[1] || null, params: new URLSearchParams(search) };
}

function go(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

const views = {
  signin: signInView,
  signup: signUpView,
  write: writeView,
  entry: entryView,
  timeline: timelineView,
  search: searchView,
  "look-back": lookBackView,
  insights: insightsView,
  settings: settingsView,
};
const publicViews = new Set(["signin", "signup"]);

let renders = 0;

async function render() {
  for (const undo of cleanup) undo();
  cleanup = [];
  const ticket = ++renders;
  document.body.classList.remove("focus");
  const current = route();
  if (!state.user && !publicViews.has(current.name)) {
    return signInView();
  }
  if (state.user && publicViews.has(current.name)) return go("#/timeline");
  const view = views[current.name];
  document.getElementById("bar").hidden = !state.user;
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === current.name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (!view) return show("Not found", h("p", {}, "There is no such page. ", h("a", { href: "#/timeline" }, "Go to your timeline.")));
  // A view shows its page only while it is still the one asked for (a slower one started
  // earlier must not replace it).
  const paint = (title, ...content) => ticket === renders && show(title, ...content);
  try {
    await view({ ...current, show: paint });
  } catch (error) {
    if (ticket === renders) showFailure(error);
  }
}

/// Replaces the page's content, titles it and moves focus to its heading. True when shown.
function show(title, ...content) {
  document.title = `${title} · MetaChat`;
  const heading = h("h1", { tabindex: "-1" }, title);
  main.replaceChildren(heading, ...content);
  heading.focus({ preventScroll: true });
  window.scrollTo(0, 0);
  return true;
}

function showFailure(error) {
  if (error instanceof ApiError && error.status === 401) return signedOut();
  const message = error instanceof ApiError ? error.message : "Something went wrong in the page.";
  show("Something went wrong", h("p", { class: "notice", role: "alert" }, message),
    h("button", { type: "button", onclick: () => (state.user ? render() : start()) }, "Try again"));
}

/// Back to the sign-in page, saying why: on the page the writer was on (signing in returns
/// there), or, when they chose to leave, at #/signin.
function signedOut(message = "Your sign-in ended: sign in again to go on.", { leave = false } = {}) {
  state.user = null;
  state.notice = message;
  document.getElementById("bar").hidden = true;
  if (leave && route().name !== "signin") location.hash = "#/signin";
  else render();
}

function loading(text = "Loading…") {
  return h("p", { class: "muted", role: "status" }, text);
}

// ---- Signing in and up -------------------------------------------------------------------

function signInView() {
  const message = state.notice;
  state.notice = null;
  document.getElementById("bar").hidden = true;
  const form = h("form", { class: "stack card", novalidate: true },
    h("p", { class: "notice form-error", role: "alert", tabindex: "-1", hidden: !message }, message || ""),
    field({ name: "login", label: "Username or e-mail", required: true, autocomplete: "username" }),
    field({ name: "password", label: "Password", type: "password", required: true, autocomplete: "current-password" }),
    h("button", { type: "submit" }, "Sign in"),
    h("p", {}, "New here? ", h("a", { href: "#/signup" }, "Create an account")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const data = new FormData(form);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await api.signIn(String(data.get("login")).trim(), String(data.get("password")));
      await loadUser();
      // Where they were going, unless that was a page for signing in.
      if (publicViews.has(route().name)) go("#/timeline");
      else render();
    } catch (error) {
      showErrors(form, error);
    } finally {
      button.disabled = false;
    }
  });
  show("Sign in to MetaChat", h("div", { class: "auth" }, h("p", { class: "muted" }, "Your journal, and what your writing says about you."), form));
  main.querySelector("h1").classList.add("auth-title");
}

function signUpView() {
  document.getElementById("bar").hidden = true;
  const form = h("form", { class: "stack card", novalidate: true },
    h("p", { class: "notice form-error", role: "alert", tabindex: "-1", hidden: true }),
    field({ name: "username", label: "Username", required: true, autocomplete: "username", hint: "letters, digits, _ . -" }),
    field({ name: "email", label: "E-mail", type: "email", required: true, autocomplete: "email" }),
    h("div", { class: "grid" },
      field({ name: "firstName", label: "First name", required: true, autocomplete: "given-name" }),
      field({ name: "lastName", label: "Last name", required: true, autocomplete: "family-name" })),
    field({ name: "password", label: "Password", type: "password", required: true, autocomplete: "new-password", hint: "at least 10 characters" }),
    field({ name: "confirm", label: "Password again", type: "password", required: true, autocomplete: "new-password" }),
    h("button", { type: "submit" }, "Create my account"),
    h("p", {}, "Already writing here? ", h("a", { href: "#/signin" }, "Sign in")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const data = Object.fromEntries(new FormData(form));
    if (data.password !== data.confirm) {
      return showErrors(form, { message: "", details: [{ field: "confirm", message: "the two passwords differ" }] });
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await api.post("/users", {
        username: data.username.trim(), email: data.email.trim(),
        firstName: data.firstName.trim(), lastName: data.lastName.trim(), password: data.password,
      });
      await api.signIn(data.username.trim(), data.password);
      await loadUser();
      toast("Welcome to MetaChat.");
      go("#/write");
    } catch (error) {
      showErrors(form, error);
    } finally {
      button.disabled = false;
    }
  });
  show("Create your account", h("div", { class: "auth" }, form));
  main.querySelector("h1").classList.add("auth-title");
}

async function loadUser() {
  const { data } = await api.get(`/users/${api.userId}`);
  state.user = data;
  return data;
}

// ---- Writing -----------------------------------------------------------------------------

function draftKey(id) {
  return `metachat.draft.${state.user.id}.${id || "new"}`;
}

function sessionKey() {
  return `metachat.session.${state.user.id}`;
}

function tagList(text) {
  const seen = new Set();
  return text.split(",").map((t) => t.trim()).filter((t) => {
    const key = t.toLowerCase();
    if (!t || seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

async function writeView({ id , show }) {
  let entry = null;
  state.etag = null;
  if (id) {
    const response = await api.get(`/diary/entries/${encodeURIComponent(id)}`);
    entry = response.data;
    state.etag = response.headers.get("ETag");
  }
  const key = draftKey(id);
  const stored = JSON.parse(localStorage.getItem(key) || "null");
  const draft = stored && (!entry || stored.savedAt > Date.parse(entry.updatedAt || entry.createdAt || 0)) ? stored : null;
  const title = h("input", { class: "editor-title", id: "entry-title", name: "title", placeholder: "Title (optional)", maxlength: "200", value: draft ? draft.title : entry ? entry.title : "" });
  const body = h("textarea", { class: "editor-body", id: "entry-content", name: "content", placeholder: "Write…", "aria-label": "Entry", required: true },
    draft ? draft.content : entry ? entry.content : "");
  const tags = h("input", { id: "entry-tags", name: "tags", placeholder: "gratitude, work", value: draft ? draft.tags : entry ? entry.tags.join(", ") : "" });
  const status = h("p", { class: "muted", id: "draft-status", role: "status" }, draft ? `Restored your unsaved draft from ${formatDate(new Date(draft.savedAt).toISOString())}.` : "");
  const discard = h("button", { type: "button", class: "quiet", hidden: !draft }, "Discard draft");
  const saveButton = h("button", { type: "submit" }, entry ? "Save changes" : "Save entry");
  const focusButton = h("button", { type: "button", class: "quiet", "aria-pressed": "false" }, "Focus mode");
  const form = h("form", { class: "stack", novalidate: true },
    h("p", { class: "notice form-error", role: "alert", tabindex: "-1", hidden: true }),
    h("div", {}, h("label", { for: "entry-title", class: "visually-hidden" }, "Title"), title),
    body,
    h("div", {}, h("label", { for: "entry-tags" }, "Tags", h("span", { class: "hint" }, " separated by commas")), tags),
    h("div", { class: "row spread" }, h("div", { class: "row" }, saveButton, discard, focusButton), status));

  let timer = null;
  let pending = false;
  const saveDraft = () => {
    pending = false;
    const value = { title: title.value, content: body.value, tags: tags.value, savedAt: Date.now() };
    if (!value.title && !value.content && !value.tags) localStorage.removeItem(key);
    else localStorage.setItem(key, JSON.stringify(value));
    status.textContent = `Draft kept on this device at ${new Date().toLocaleTimeString()}.`;
    discard.hidden = false;
  };
  for (const input of [title, body, tags]) {
    input.addEventListener("input", () => {
      pending = true;
      clearTimeout(timer);
      timer = setTimeout(saveDraft, 700);
    });
  }
  // Leaving the page (another view, a reload, closing the tab) keeps what was typed last.
  const keep = () => { if (pending && state.user) saveDraft(); };
  window.addEventListener("pagehide", keep);
  cleanup.push(() => { clearTimeout(timer); keep(); window.removeEventListener("pagehide", keep); });
  discard.addEventListener("click", () => {
    localStorage.removeItem(key);
    title.value = entry ? entry.title : "";
    body.value = entry ? entry.content : "";
    tags.value = entry ? entry.tags.join(", ") : "";
    discard.hidden = true;
    status.textContent = "Draft discarded.";
  });
  focusButton.addEventListener("click", () => {
    const on = document.body.classList.toggle("focus");
    focusButton.setAttribute("aria-pressed", String(on));
    body.focus();
  });
  const onKey = (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key === "s") {
      event.preventDefault();
      form.requestSubmit();
    }
    if (event.key === "Escape" && document.body.classList.contains("focus")) {
      document.body.classList.remove("focus");
      focusButton.setAttribute("aria-pressed", "false");
    }
  };
  document.addEventListener("keydown", onKey);
  cleanup.push(() => document.removeEventListener("keydown", onKey));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    clearTimeout(timer);
    const content = body.value;
    if (!content.trim()) {
      return showErrors(form, { message: "", details: [{ field: "content", message: "write something first" }] });
    }
    // At most 80 characters, never half of one (an emoji is two UTF-16 units).
    const entryTitle = title.value.trim() || Array.from(content.trim().split("\n")[0]).slice(0, 80).join("");
    saveButton.disabled = true;
    clearTimeout(timer);
    pending = false;
    try {
      let saved;
      if (entry) {
        const change = { title: entryTitle, content, tags: tagList(tags.value) };
        const send = (headers) => api.put(`/diary/entries/${entry.id}`, change, { headers });
        saved = (await ifUnchanged(entry, state.etag, send)).data;
      } else {
        const session = localStorage.getItem(sessionKey());
        saved = (await api.post("/diary/entries", {
          userId: state.user.id, title: entryTitle, content, tags: tagList(tags.value), sessionId: session || undefined,
        })).data;
      }
      localStorage.removeItem(key);
      toast(entry ? "Changes saved." : "Entry saved.");
      go(`#/entry/${saved.id}`);
    } catch (error) {
      if (error.status === 412) {
        error.message = "This entry was edited elsewhere since you opened it, so it was not saved: your text is kept as a draft on this device. Open the entry to see the other version.";
        saveDraft();
      }
      showErrors(form, error);
    } finally {
      saveButton.disabled = false;
    }
  });

  const panel = await sessionPanel();
  if (!show(entry ? "Edit entry" : "Write", panel, form)) return;
  if (entry) main.append(h("p", {}, h("a", { href: `#/entry/${entry.id}` }, "Back to the entry without saving")));
  body.focus();
}

/// The entry's text as the writer sees it, to tell an edit from an analysis.
function sameText(a, b) {
  return a.title === b.title && a.content === b.content && JSON.stringify(a.tags) === JSON.stringify(b.tags);
}

/// Sends a change of an entry (`send(headers)`) with `If-Match`. The analysis of an entry also
/// moves its version: when that is all that changed since the page read it, the change is
/// sent again on the new version; an edit made elsewhere is not overwritten (412).
async function ifUnchanged(entry, etag, send) {
  try {
    return await send(etag ? { "If-Match": etag } : {});
  } catch (error) {
    if (error.status !== 412) throw error;
    const now = await api.get(`/diary/entries/${entry.id}`);
    if (!sameText(now.data, entry)) throw error;
    return send({ "If-Match": now.headers.get("ETag") });
  }
}

/// Start or end a writing session; entries written meanwhile belong to it.
async function sessionPanel() {
  const panel = h("section", { class: "card session", "aria-label": "Writing session" });
  let id = localStorage.getItem(sessionKey());
  let started = null;
  if (id) {
    try {
      const { data } = await api.get(`/diary/sessions/${encodeURIComponent(id)}`);
      if (data.status === "active" && !data.endTime) started = Date.parse(data.startTime);
      else id = null;
    } catch {
      id = null;
    }
    if (!id) localStorage.removeItem(sessionKey());
  }
  let ticker = null;
  const draw = () => {
    clearInterval(ticker);
    if (!id) {
      const start = h("button", { type: "button", class: "quiet" }, "Start a writing session");
      start.addEventListener("click", async () => {
        start.disabled = true;
        try {
          const { data } = await api.post("/diary/sessions", { userId: state.user.id });
          id = data.id;
          started = Date.parse(data.startTime) || Date.now();
          localStorage.setItem(sessionKey(), id);
          toast("Session started: what you save now belongs to it.");
          draw();
          panel.querySelector("button").focus();
        } catch (error) {
          toast(error.message);
          start.disabled = false;
        }
      });
      panel.replaceChildren(h("span", { class: "muted" }, "No session running."), start);
      return;
    }
    const timer = h("span", { class: "timer", "aria-live": "off" }, "");
    const tick = () => {
      const seconds = Math.max(0, Math.floor((Date.now() - started) / 1000));
      const m = Math.floor(seconds / 60), s = seconds % 60;
      timer.textContent = `${m}:${String(s).padStart(2, "0")}`;
    };
    tick();
    ticker = setInterval(tick, 1000);
    const end = h("button", { type: "button", class: "quiet" }, "End session");
    end.addEventListener("click", async () => {
      end.disabled = true;
      try {
        await api.put(`/diary/sessions/${encodeURIComponent(id)}/end`, {});
        localStorage.removeItem(sessionKey());
        id = null;
        toast("Session ended.");
        draw();
      } catch (error) {
        toast(error.message);
        end.disabled = false;
      }
    });
    panel.replaceChildren(h("span", {}, "Session running for "), timer, end);
  };
  draw();
  cleanup.push(() => clearInterval(ticker));
  return panel;
}

// ---- Reading one entry -------------------------------------------------------------------

function tagItems(tags) {
  return tags && tags.length ? h("ul", { class: "tags", "aria-label": "Tags" }, ...tags.map((t) => h("li", {}, t))) : null;
}

function mood(compound) {
  if (compound === null || compound === undefined) return null;
  const word = compound >= 0.05 ? "positive" : compound <= -0.05 ? "negative" : "neutral";
  return `${word} (${compound.toFixed(2)})`;
}

async function entryView({ id , show }) {
  const response = await api.get(`/diary/entries/${encodeURIComponent(id)}`);
  const entry = response.data;
  const etag = response.headers.get("ETag");
  const remove = h("button", { type: "button", class: "danger" }, "Delete");
  remove.addEventListener("click", async () => {
    const sure = await confirmDialog({ title: "Delete this entry?", message: `“${entry.title}” leaves your timeline, analytics and search. Its history stays in the event log until you erase your account.`, confirm: "Delete entry" });
    if (!sure) return remove.focus();
    try {
      await ifUnchanged(entry, etag, (headers) => api.delete(`/diary/entries/${entry.id}`, { headers }));
      toast("Entry deleted.");
      go("#/timeline");
    } catch (error) {
      toast(error.status === 412 ? "This entry was edited elsewhere: reload it before deleting." : error.message);
    }
  });
  const analysis = entry.analysis;
  const history = h("section", { class: "card versions", "aria-labelledby": "history-title" }, h("h2", { id: "history-title" }, "History"), loading());
  const related = h("section", { class: "card", "aria-labelledby": "related-title" }, h("h2", { id: "related-title" }, "Related entries"), loading());
  if (!show(entry.title,
    h("p", { class: "muted" }, `Written ${formatDate(entry.createdAt)}`, entry.updatedAt && entry.updatedAt !== entry.createdAt ? ` · edited ${formatDate(entry.updatedAt)}` : "", entry.sessionId ? " · in a writing session" : ""),
    tagItems(entry.tags),
    h("article", { class: "card entry-text" }, entry.content),
    h("div", { class: "row" }, h("a", { class: "button", href: `#/write/${entry.id}` }, "Edit"), remove),
    analysis ? h("section", { class: "card", "aria-labelledby": "analysis-title" },
      h("h2", { id: "analysis-title" }, "What the analysis saw"),
      h("dl", {},
        analysis.sentiment ? [h("dt", {}, "Mood"), h("dd", {}, mood(analysis.sentiment.compound))] : null,
        analysis.keywords && analysis.keywords.length ? [h("dt", {}, "Keywords"), h("dd", {}, analysis.keywords.join(", "))] : null,
        analysis.sensory ? [h("dt", {}, "Senses"), h("dd", {}, `visual ${Math.round(analysis.sensory.visual * 100)}%, auditory ${Math.round(analysis.sensory.auditory * 100)}%, kinesthetic ${Math.round(analysis.sensory.kinesthetic * 100)}%`)] : null)) : null,
    history, related)) return;
  api.get(`/diary/entries/${encodeURIComponent(id)}/history`).then(({ data }) => {
    const versions = data.events.filter((e) => e.eventType === "DiaryEntryCreated" || e.eventType === "DiaryEntryUpdated");
    history.replaceChildren(h("h2", { id: "history-title" }, "History"),
      h("p", { class: "muted" }, `${versions.length} ${versions.length === 1 ? "version" : "versions"}, newest first.`),
      ...versions.reverse().map((e) => h("details", {},
        h("summary", {}, `Version ${e.version} · ${e.eventType === "DiaryEntryCreated" ? "written" : "edited"} ${formatDate(e.recordedAt)}`),
        h("h3", {}, e.data.title || ""),
        tagItems(e.data.tags),
        h("div", { class: "entry-text" }, e.data.content || ""))));
  }, (error) => history.replaceChildren(h("h2", { id: "history-title" }, "History"), h("p", { class: "muted" }, error.message)));
  api.get(`/diary/entries/${encodeURIComponent(id)}/related${query({ limit: 5 })}`).then(({ data }) => {
    const items = data.results || [];
    related.replaceChildren(h("h2", { id: "related-title" }, "Related entries"),
      items.length ? h("div", {}, ...items.map((r) => entryCard(r.entry))) : h("p", { class: "muted" }, "Nothing close to this one yet."));
  }, (error) => related.replaceChildren(h("h2", { id: "related-title" }, "Related entries"), h("p", { class: "muted" }, error.status === 503 ? "Related entries need the search model, which this platform runs without." : error.message)));
}

// ---- Looking back ------------------------------------------------------------------------

function entryCard(entry) {
  const preview = entry.content.length > 220 ? `${entry.content.slice(0, 220)}…` : entry.content;
  return h("a", { class: "card entry-card", href: `#/entry/${entry.id}` },
    h("h3", {}, entry.title),
    h("p", {}, preview),
    h("p", { class: "muted" }, formatDate(entry.createdAt, { timeStyle: "short" })),
    tagItems(entry.tags));
}

/// The UTC instant a local date (YYYY-MM-DD) starts, `days` later.
function startOfLocalDay(day, days = 0) {
  const [y, m, d] = day.split("-").map(Number);
  return new Date(y, m - 1, d + days).toISOString();
}

async function timelineView({ params , show }) {
  const from = params.get("from") || "";
  const to = params.get("to") || "";
  const tag = (params.get("tag") || "").trim();
  const filters = h("form", { class: "card filters", role: "search", "aria-label": "Filter the timeline" },
    field({ name: "from", label: "From", type: "date", value: from }),
    field({ name: "to", label: "To", type: "date", value: to }),
    field({ name: "tag", label: "Tag", value: tag }),
    h("div", { class: "row" }, h("button", { type: "submit" }, "Filter"), from || to || tag ? h("a", { href: "#/timeline" }, "Clear") : null));
  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(filters));
    go(`#/timeline${query({ from: data.from, to: data.to, tag: data.tag.trim() })}`);
  });
  const searchForm = h("form", { class: "row", role: "search", "aria-label": "Search" },
    h("label", { for: "search-q", class: "visually-hidden" }, "Search your diary"),
    h("input", { id: "search-q", name: "q", type: "search", placeholder: "Search by meaning: “a calm morning”" }),
    h("button", { type: "submit" }, "Search"));
  searchForm.querySelector("input").style.flex = "1";
  searchForm.querySelector("input").style.width = "auto";
  searchForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const q = new FormData(searchForm).get("q").trim();
    if (q) go(`#/search${query({ q })}`);
  });
  const list = h("div", { id: "timeline", "aria-busy": "false" });
  const announce = h("p", { class: "visually-hidden", role: "status" });
  const more = h("button", { type: "button", class: "quiet" }, "Load more");
  const end = h("p", { class: "muted", hidden: true }, "");
  const sentinel = h("div", { class: "sentinel", "aria-hidden": "true" });
  if (!show("Timeline", searchForm, filters, announce, list, sentinel, h("div", { class: "row" }, more), end)) return;

  let cursor = null;
  let done = false;
  let busy = false;
  let lastDay = null;
  let shown = 0;
  const startTime = from ? startOfLocalDay(from) : undefined;
  const endTime = to ? startOfLocalDay(to, 1) : undefined;
  const loadMore = async () => {
    if (busy || done) return;
    busy = true;
    list.setAttribute("aria-busy", "true");
    more.disabled = true;
    try {
      // A tag filter may leave a page empty: read on until something shows (or the end).
      let added = 0;
      for (let pages = 0; pages < 10 && !done && added === 0; pages++) {
        const { data } = await api.get(`/diary/entries/user/${state.user.id}${query({ limit: 20, startTime, endTime, cursor })}`, { headers: api.fresh() });
        cursor = data.nextCursor;
        done = !data.hasMore || !cursor;
        for (const entry of data.entries) {
          if (tag && !entry.tags.some((t) => t.toLowerCase() === tag.toLowerCase())) continue;
          const day = localDay(entry.createdAt);
          if (day !== lastDay) {
            list.append(h("h2", { class: "day" }, new Date(entry.createdAt).toLocaleDateString(undefined, { weekday: "long", year: "numeric", month: "long", day: "numeric" })));
            lastDay = day;
          }
          list.append(entryCard(entry));
          added++;
        }
      }
      shown += added;
      if (added) announce.textContent = `${added} more ${added === 1 ? "entry" : "entries"} shown, ${shown} in all.`;
    } catch (error) {
      toast(error.message);
    } finally {
      busy = false;
      list.setAttribute("aria-busy", "false");
      more.disabled = false;
      more.hidden = done;
      // The observer fires on a change only: a page too short to push the sentinel away
      // asks for the next one itself.
      if (!done && sentinel.getBoundingClientRect().top < window.innerHeight + 400) setTimeout(loadMore, 0);
      if (done) {
        end.hidden = false;
        end.textContent = shown ? "That is everything." : from || to || tag ? "No entries match these filters." : "Nothing written yet. Your first entry starts here: ";
        if (!shown && !(from || to || tag)) end.append(h("a", { href: "#/write" }, "write"));
      }
    }
  };
  more.addEventListener("click", loadMore);
  const observer = new IntersectionObserver((seen) => {
    if (seen.some((e) => e.isIntersecting)) loadMore();
  }, { rootMargin: "400px" });
  observer.observe(sentinel);
  cleanup.push(() => observer.disconnect());
  await loadMore();
}

async function searchView({ params , show }) {
  const q = (params.get("q") || "").trim();
  const form = h("form", { class: "row", role: "search", "aria-label": "Search" },
    h("label", { for: "search-q", class: "visually-hidden" }, "Search your diary"),
    h("input", { id: "search-q", name: "q", type: "search", value: q }),
    h("button", { type: "submit" }, "Search"));
  form.querySelector("input").style.flex = "1";
  form.querySelector("input").style.width = "auto";
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = new FormData(form).get("q").trim();
    if (text) go(`#/search${query({ q: text })}`);
  });
  const results = h("div", { id: "results" }, loading("Searching…"));
  show(q ? `Search: ${q}` : "Search", form, results);
  if (!q) return results.replaceChildren();
  try {
    const { data } = await api.get(`/diary/search${query({ userId: state.user.id, q, limit: 20 })}`);
    results.replaceChildren(
      h("p", { class: "muted", role: "status" }, data.results.length ? `${data.results.length}${data.hasMore ? "+" : ""} entries, closest first.` : "Nothing found."),
      ...data.results.map((r) => entryCard(r.entry)));
  } catch (error) {
    results.replaceChildren(h("p", { class: "notice", role: "alert" }, error.status === 503 ? "Search by meaning needs the sentence-embedding model, which this platform runs without (make run fetches it)." : error.message));
  }
}

async function lookBackView({ show }) {
  const { data } = await api.get(`/diary/analytics${query({ userId: state.user.id, period: "year", timeZone: zone })}`, { headers: api.fresh() });
  const days = data.days.map((d) => ({ date: d.date, entries: d.entries }));
  const summary = `${data.writingDays} writing ${data.writingDays === 1 ? "day" : "days"} in the last year; longest streak ${data.longestStreak} ${data.longestStreak === 1 ? "day" : "days"}, current streak ${data.currentStreak}.`;
  const onThisDay = h("section", { "aria-labelledby": "on-this-day" }, h("h2", { id: "on-this-day" }, "On this day"), loading());
  if (!show("Look back", heatMap({ title: "Your year of writing", days, summary, onSelect: true }), onThisDay)) return;
  // The latest weeks first in view where the calendar is wider than the screen.
  const calendar = main.querySelector(".heat .scroll");
  if (calendar) calendar.scrollLeft = calendar.scrollWidth;
  const today = new Date();
  const years = [];
  for (let back = 1; back <= 10; back++) {
    const day = new Date(today.getFullYear() - back, today.getMonth(), today.getDate());
    if (day.getMonth() !== today.getMonth()) day.setDate(0);
    years.push({ back, day: localDay(day) });
  }
  const settled = await Promise.allSettled(years.map(async ({ back, day }) => {
    const { data: page } = await api.get(`/diary/entries/user/${state.user.id}${query({ limit: 10, startTime: startOfLocalDay(day), endTime: startOfLocalDay(day, 1) })}`);
    return { back, day, entries: page.entries };
  }));
  const found = settled.filter((r) => r.status === "fulfilled").map((r) => r.value);
  const failed = settled.length - found.length;
  const withEntries = found.filter((f) => f.entries.length);
  onThisDay.replaceChildren(h("h2", { id: "on-this-day" }, "On this day"),
    withEntries.length
      ? h("div", {}, ...withEntries.map((f) => h("section", {},
        h("h3", {}, `${f.back} ${f.back === 1 ? "year" : "years"} ago · ${new Date(`${f.day}T12:00:00`).toLocaleDateString(undefined, { dateStyle: "long" })}`),
        ...f.entries.map(entryCard))))
      : h("p", { class: "muted" }, failed ? "" : "Nothing written on this day in earlier years."),
    failed ? h("p", { class: "notice" }, `${failed} of the earlier years could not be read just now.`) : null);
}

// ---- Seeing yourself ---------------------------------------------------------------------

function stat(value, label) {
  return h("div", { class: "stat" }, h("b", {}, String(value)), h("span", {}, label));
}

function percent(x) {
  return `${Math.round((x || 0) * 100)}%`;
}

async function insightsView({ params , show }) {
  const period = ["week", "month", "year"].includes(params.get("period")) ? params.get("period") : "month";
  const [{ data: a }, { data: user }] = await Promise.all([
    api.get(`/diary/analytics${query({ userId: state.user.id, period, timeZone: zone })}`, { headers: api.fresh() }),
    api.get(`/users/${state.user.id}`),
  ]);
  state.user = user;
  const picker = h("nav", { class: "row", "aria-label": "Period" },
    ...["week", "month", "year"].map((p) => h("a", { class: p === period ? "button" : "button quiet", href: `#/insights?period=${p}`, "aria-current": p === period ? "page" : null }, `Last ${p}`)));
  const labels = a.days.map((d) => d.date);
  const blocks = [
    picker,
    h("div", { class: "stats" },
      stat(a.entryCount, a.entryCount === 1 ? "entry" : "entries"),
      stat(a.wordCount, "words"),
      stat(a.writingDays, "writing days"),
      stat(a.currentStreak, "day streak now"),
      stat(a.longestStreak, "longest streak"),
      stat(a.sessionCount, `sessions, ${Math.round(a.totalSessionMinutes)} min`)),
    barChart({ title: "Entries per day", labels, values: a.days.map((d) => d.entries), unit: "entries", summary: `${a.entryCount} entries over ${labels.length} days.` }),
    barChart({ title: "Words per day", labels, values: a.days.map((d) => d.words), unit: "words", summary: `${a.wordCount} words over ${labels.length} days.` }),
  ];
  if (!a.analysisEnabled) {
    blocks.push(h("p", { class: "notice" }, "Analysis is off, so mood, senses and archetype are not shown. ", h("a", { href: "#/settings" }, "Switch it on in Settings.")));
  } else {
    const scored = a.days.filter((d) => d.meanSentiment !== null && d.meanSentiment !== undefined).length;
    blocks.push(moodChart({
      title: "Mood", labels, values: a.days.map((d) => d.meanSentiment),
      summary: a.meanSentiment === null || a.meanSentiment === undefined ? "No entry scored for mood in this period." : `Mean mood ${mood(a.meanSentiment)} from ${scored} scored days (−1 is most negative, +1 most positive).`,
    }));
    blocks.push(h("div", { class: "grid" }, sensesCard(a.profile, user), archetypeCard(user)));
  }
  blocks.push(h("div", { class: "grid" },
    h("section", { class: "card", "aria-labelledby": "tags-title" }, h("h2", { id: "tags-title" }, "Tags you used"),
      a.tagFrequencies.length ? h("ul", {}, ...a.tagFrequencies.slice(0, 12).map((t) => h("li", {}, h("a", { href: `#/timeline${query({ tag: t.tag })}` }, t.tag), ` · ${t.count}`))) : h("p", { class: "muted" }, "No tags in this period.")),
    a.analysisEnabled ? h("section", { class: "card", "aria-labelledby": "keywords-title" }, h("h2", { id: "keywords-title" }, "What you wrote about"),
      a.topKeywords.length ? h("p", {}, a.topKeywords.map((k) => `${k.keyword} (${k.entries})`).join(", ")) : h("p", { class: "muted" }, "No keywords yet."),
      a.themes && a.themes.length ? h("ul", {}, ...a.themes.map((t) => h("li", {}, `${t.label}: ${t.entryCount} ${t.entryCount === 1 ? "entry" : "entries"} (${percent(t.share)})`))) : null) : null));
  show("Insights", ...blocks);
}

function sensesCard(profile, user) {
  const card = h("section", { class: "card", "aria-labelledby": "senses-title" }, h("h2", { id: "senses-title" }, "Your senses"));
  const sensory = profile && profile.sensory;
  if (sensory) {
    card.append(h("p", { class: "muted" }, `How your words this period lean to seeing, hearing and feeling (${percent(sensory.coverage)} of words are sensory).`),
      shares([["Visual", sensory.visual], ["Auditory", sensory.auditory], ["Kinesthetic", sensory.kinesthetic]]));
  } else {
    card.append(h("p", { class: "muted" }, profile ? `Not enough words yet in this period (at least ${profile.sensoryMinimumWords}).` : "No profile for this period."));
  }
  const inferred = user.inferredModalities;
  if (inferred && inferred.weights) {
    card.append(h("h3", {}, "Across your recent writing"),
      shares(Object.entries(inferred.weights).map(([k, v]) => [k[0].toUpperCase() + k.slice(1), v])));
  }
  if (user.modalities) {
    card.append(h("p", { class: "muted" }, `You set your modalities yourself: ${Object.entries(user.modalities).map(([k, v]) => `${k} ${percent(v)}`).join(", ")}.`));
  }
  return card;
}

function archetypeCard(user) {
  const card = h("section", { class: "card", "aria-labelledby": "archetype-title" }, h("h2", { id: "archetype-title" }, "Your archetype"));
  const assigned = user.archetype;
  const inferred = user.inferredArchetype;
  if (assigned) {
    card.append(h("p", {}, h("b", {}, assigned.archetypeName), ` · you chose it (confidence ${percent(assigned.confidence)})`),
      h("p", { class: "muted" }, assigned.description));
  }
  if (inferred) {
    const basis = inferred.basis || {};
    card.append(h("p", {}, h("b", {}, inferred.archetypeName), ` · inferred from your writing, confidence ${percent(inferred.confidence)}`),
      h("p", { class: "muted" }, `From ${basis.entries} entries and ${basis.words} words of the last ${basis.windowDays} days.`));
    const evidence = (inferred.evidence || []).filter((e) => e.strength > 0).slice(0, 5);
    if (evidence.length) {
      const words = (name) => name.replaceAll("_", " ").replace(/([a-z])([A-Z])/g, "$1 $2").toLowerCase();
      card.append(h("h3", {}, "Why"), h("ul", {}, ...evidence.map((e) => h("li", {},
        `${words(e.feature)}: strength ${e.strength.toFixed(2)}`,
        e.words && e.words.length ? ` (${e.words.slice(0, 6).join(", ")})` : ""))));
    }
  }
  if (!assigned && !inferred) {
    card.append(h("p", { class: "muted" }, "Write a few more entries: an archetype is inferred once there is enough of your writing."));
  }
  return card;
}

// ---- Settings ----------------------------------------------------------------------------

/// Whether an avatar can be shown as a picture here (the page loads pictures from data: and
/// https: addresses only).
function showable(avatar) {
  return typeof avatar === "string" && (/^data:image\/(png|jpeg|gif|webp);base64,/.test(avatar) || avatar.startsWith("https://"));
}

/// The profile's picture: shown, replaced by one chosen from the device (cut to a square and
/// scaled to 160 pixels, kept as a data: address within the API's limit), or removed.
function avatarPicker(user) {
  let value = user.avatar || "";
  const initials = `${(user.firstName || "?")[0]}${(user.lastName || "")[0] || ""}`.toUpperCase();
  const preview = h("div", { class: "avatar", "aria-hidden": "true" });
  const status = h("span", { class: "muted", role: "status" });
  const input = h("input", { type: "file", id: "avatar-file", accept: "image/*", class: "visually-hidden" });
  const remove = h("button", { type: "button", class: "quiet" }, "Remove");
  const draw = () => {
    preview.replaceChildren(showable(value) ? h("img", { src: value, alt: "", width: "72", height: "72" }) : h("span", {}, initials));
    remove.hidden = !value;
  };
  input.addEventListener("change", async () => {
    const file = input.files && input.files[0];
    if (!file) return;
    try {
      const bitmap = await createImageBitmap(file);
      const side = Math.min(bitmap.width, bitmap.height);
      const canvas = document.createElement("canvas");
      canvas.width = canvas.height = 160;
      canvas.getContext("2d").drawImage(bitmap, (bitmap.width - side) / 2, (bitmap.height - side) / 2, side, side, 0, 0, 160, 160);
      value = canvas.toDataURL("image/jpeg", 0.85);
      status.textContent = "New picture chosen: save the profile to keep it.";
      draw();
    } catch {
      status.textContent = "That file is not a picture this browser can read.";
    }
  });
  remove.addEventListener("click", () => {
    value = "";
    status.textContent = "Picture removed: save the profile to keep it so.";
    draw();
  });
  draw();
  const element = h("div", { class: "row" }, preview,
    h("label", { for: "avatar-file", class: "button quiet" }, "Choose a picture"), input, remove, status);
  return {
    element,
    value: () => value,
    saved: (stored) => { value = stored || ""; status.textContent = ""; draw(); },
  };
}

/// A download link that first makes sure the sign-in's access cookie is fresh (the browser
/// follows the link itself, and a link cannot renew it).
function exportLink(href, name, label) {
  const link = h("a", { class: "button quiet", href, download: name }, label);
  let renewed = false;
  link.addEventListener("click", async (event) => {
    if (renewed) { renewed = false; return; }
    event.preventDefault();
    if (await api.whoAmI()) {
      renewed = true;
      link.click();
    } else {
      signedOut();
    }
  });
  return link;
}

async function settingsView({ show }) {
  const response = await api.get(`/users/${state.user.id}`);
  const user = response.data;
  state.user = user;
  let etag = response.headers.get("ETag");
  const { data: setting } = await api.get(`/users/${user.id}/analysis`);

  const avatar = avatarPicker(user);
  const profile = h("form", { class: "stack card", novalidate: true, "aria-labelledby": "profile-title" },
    h("h2", { id: "profile-title" }, "Profile"),
    h("p", { class: "notice form-error", role: "alert", tabindex: "-1", hidden: true }),
    avatar.element,
    h("div", { class: "grid" },
      field({ name: "firstName", label: "First name", value: user.firstName, autocomplete: "given-name" }),
      field({ name: "lastName", label: "Last name", value: user.lastName, autocomplete: "family-name" })),
    field({ name: "dateOfBirth", label: "Date of birth", type: "date", value: user.dateOfBirth || "" }),
    field({ name: "bio", label: "About you", value: user.bio || "", textarea: true }),
    h("p", { class: "muted" }, `Signed in as ${user.username} (${user.email}).`),
    h("button", { type: "submit" }, "Save profile"));
  profile.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(profile);
    const data = Object.fromEntries(new FormData(profile));
    try {
      const saved = await api.put(`/users/${user.id}`, {
        // An empty string clears a field.
        firstName: data.firstName.trim(), lastName: data.lastName.trim(), bio: data.bio,
        avatar: avatar.value(), dateOfBirth: data.dateOfBirth,
      }, { headers: etag ? { "If-Match": etag } : {} });
      etag = saved.headers.get("ETag") || etag;
      state.user = saved.data;
      avatar.saved(saved.data.avatar);
      toast("Profile saved.");
    } catch (error) {
      showErrors(profile, error);
    }
  });

  const toggle = h("input", { type: "checkbox", id: "analysis-enabled", checked: setting.enabled });
  const analysisStatus = h("p", { class: "muted", role: "status" }, "");
  toggle.addEventListener("change", async () => {
    toggle.disabled = true;
    try {
      await api.put(`/users/${user.id}/analysis`, { enabled: toggle.checked });
      analysisStatus.textContent = toggle.checked ? "Analysis is on: your entries are analysed again." : "Analysis is off: what was derived from your writing was removed.";
    } catch (error) {
      toggle.checked = !toggle.checked;
      analysisStatus.textContent = error.message;
    } finally {
      toggle.disabled = false;
    }
  });
  const analysis = h("section", { class: "card", "aria-labelledby": "analysis-title" },
    h("h2", { id: "analysis-title" }, "Analysis"),
    h("p", {}, "MetaChat analyses your entries on this server (nothing leaves it) for mood, senses and archetype."),
    h("div", { class: "row" }, toggle, h("label", { for: "analysis-enabled" }, "Analyse my writing")),
    analysisStatus);

  const password = h("form", { class: "stack card", novalidate: true, "aria-labelledby": "password-title" },
    h("h2", { id: "password-title" }, "Password"),
    h("p", { class: "notice form-error", role: "alert", tabindex: "-1", hidden: true }),
    field({ name: "currentPassword", label: "Current password", type: "password", autocomplete: "current-password" }),
    field({ name: "newPassword", label: "New password", type: "password", autocomplete: "new-password", hint: "at least 10 characters" }),
    h("button", { type: "submit" }, "Change password"));
  password.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(password);
    const data = Object.fromEntries(new FormData(password));
    try {
      await api.put(`/users/${user.id}/password`, { currentPassword: data.currentPassword, newPassword: data.newPassword });
      // Changing it ends every sign-in: this browser signs in again with the new one.
      await api.signIn(user.username, data.newPassword);
      password.reset();
      toast("Password changed. Other devices must sign in again.");
    } catch (error) {
      showErrors(password, error);
    }
  });

  const themeSelect = h("select", { id: "theme" },
    ...[["system", "As the system"], ["light", "Light"], ["dark", "Dark"]].map(([value, label]) =>
      h("option", { value, selected: (localStorage.getItem("metachat.theme") || "system") === value }, label)));
  themeSelect.addEventListener("change", () => {
    localStorage.setItem("metachat.theme", themeSelect.value);
    applyTheme();
  });
  const appearance = h("section", { class: "card", "aria-labelledby": "appearance-title" },
    h("h2", { id: "appearance-title" }, "Appearance"),
    h("label", { for: "theme" }, "Theme"), themeSelect);

  const exports = h("section", { class: "card", "aria-labelledby": "export-title" },
    h("h2", { id: "export-title" }, "Export"),
    h("p", {}, "Everything you wrote and everything recorded about you, to keep or to take elsewhere."),
    h("div", { class: "row" },
      exportLink(`/users/${user.id}/export`, `metachat-${user.username}.json`, "Download everything (JSON)"),
      exportLink(`/users/${user.id}/export.md`, `metachat-${user.username}.md`, "Download the diary (Markdown)")));

  const erase = h("button", { type: "button", class: "danger" }, "Erase my account");
  erase.addEventListener("click", async () => {
    const sure = await confirmDialog({
      title: "Erase your account?",
      message: "Your profile, every entry and session, their history and everything derived from them are erased for good. Export first if you want to keep them.",
      confirm: "Erase everything", typed: user.username,
    });
    if (!sure) return erase.focus();
    try {
      await api.delete(`/users/${user.id}`);
      await api.signOut().catch(() => {});
      for (const key of Object.keys(localStorage)) if (key.includes(user.id)) localStorage.removeItem(key);
      signedOut("Your account and your diary were erased.", { leave: true });
    } catch (error) {
      toast(error.message);
    }
  });
  const danger = h("section", { class: "card", "aria-labelledby": "erase-title" },
    h("h2", { id: "erase-title" }, "Erase my account"),
    h("p", {}, "This cannot be undone."), erase);

  show("Settings", profile, analysis, password, appearance, exports, danger);
}

// ---- Start -------------------------------------------------------------------------------

/// Once per page load: the theme and the handlers that outlive every view.
function init() {
  applyTheme();
  // The sign-in ended under a request: the page that made it shows the sign-in page (its
  // failure is a 401), or the next one does.
  api.onSignedOut = () => { state.user = null; };
  document.getElementById("sign-out").addEventListener("click", async () => {
    const id = state.user && state.user.id;
    const drafts = id ? Object.keys(localStorage).filter((key) => key.startsWith(`metachat.draft.${id}.`)) : [];
    if (drafts.length && !(await confirmDialog({
      title: "Sign out and drop your draft?",
      message: "A draft you have not saved is kept on this device. Signing out deletes it, so that nobody else using this device can read it.",
      confirm: "Sign out and delete the draft",
    }))) return;
    try {
      await api.signOut();
    } catch (error) {
      // 401 or 403: the cookies were gone already.
      if (error.status !== 401 && error.status !== 403) return toast(`Signing out failed: ${error.message}`);
    }
    for (const key of drafts) localStorage.removeItem(key);
    if (id) localStorage.removeItem(`metachat.session.${id}`);
    signedOut("You signed out.", { leave: true });
  });
  // The skip link moves focus to the page's content (its fragment is not a route).
  document.querySelector(".skip").addEventListener("click", (event) => {
    event.preventDefault();
    main.focus();
  });
  window.addEventListener("hashchange", () => render());
}

/// Who is signed in, then the page the address asks for.
async function start() {
  try {
    if (await api.whoAmI()) await loadUser();
  } catch (error) {
    if (!(error instanceof ApiError && (error.status === 401 || error.status === 404))) return showFailure(error);
  }
  render();
}

init();
start();
