// MetaChat's web app in headless Chromium (Debian's), against a running platform
// (scripts/browser-tests.sh starts one with authentication on). A writer signs up, writes in
// a session, edits, looks back, searches, reads their analytics, changes settings, signs out
// and in, and erases their account. Each step asserts what the page shows and what the API
// then holds. Screenshots of the main pages at desktop and phone width, light and dark, go to
// SCREENSHOTS; axe-core checks each main page and fails on serious or critical violations.
//
//   METACHAT_URL=http://127.0.0.1:8080 SCREENSHOTS=dir node app.test.mjs
import { chromium } from "playwright-core";
import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import assert from "node:assert/strict";

const base = process.env.METACHAT_URL || "http://127.0.0.1:8080";
const screenshots = process.env.SCREENSHOTS || "screenshots";
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
mkdirSync(screenshots, { recursive: true });

const stamp = Date.now().toString(36);
const writer = {
  username: `writer_${stamp}`,
  email: `writer_${stamp}@example.com`,
  firstName: "Ada",
  lastName: "Quill",
  password: "a long enough passphrase",
};
const started = Date.now();
let steps = 0;

function step(name) {
  steps += 1;
  console.log(`[${((Date.now() - started) / 1000).toFixed(1)} s] ${steps}. ${name}`);
}

// ---- The API, with a token of its own, to check what is stored --------------------------

let token = null;
let userId = null;

async function call(method, path, body) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: {
      Accept: "application/json",
      ...(token ? { Authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { "Content-Type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null, headers: response.headers };
}

async function apiSignIn() {
  const signed = await call("POST", "/auth/token", { login: writer.username, password: writer.password });
  assert.equal(signed.status, 200, JSON.stringify(signed.body));
  token = signed.body.accessToken;
  userId = signed.body.userId;
}

/// Polls `check` (an async function returning a truthy value when done) for up to 10 s.
async function eventually(what, check) {
  const until = Date.now() + 10_000;
  let last;
  while (Date.now() < until) {
    last = await check();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: not within 10 s (last: ${JSON.stringify(last)})`);
}

// ---- Accessibility and screenshots ------------------------------------------------------

const violations = [];

async function axe(page, name) {
  // Evaluated through the DevTools protocol: the page's CSP (no inline script) stays on.
  await page.evaluate(axeSource);
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ")) }));
  });
  const serious = result.filter((v) => v.impact === "serious" || v.impact === "critical");
  for (const v of result) console.log(`    axe ${name}: ${v.impact} ${v.id}: ${v.help} (${v.nodes.join(", ")})`);
  violations.push(...serious.map((v) => ({ page: name, ...v })));
}

async function shoot(page, name) {
  await page.screenshot({ path: `${screenshots}/${name}.png`, fullPage: true });
}

/// Every width and theme of one page: screenshots, and axe in each theme.
async function capture(browser, storage, hash, name, ready) {
  for (const [label, options] of [
    ["desktop", { viewport: { width: 1280, height: 800 } }],
    ["phone", { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 }],
  ]) {
    for (const scheme of ["light", "dark"]) {
      const context = await browser.newContext({ ...options, colorScheme: scheme, storageState: storage });
      const page = await context.newPage();
      await page.goto(`${base}/${hash}`);
      await ready(page);
      await shoot(page, `${name}-${label}-${scheme}`);
      if (label === "desktop") await axe(page, `${name} (${scheme})`);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 1, `${name} at ${label} width scrolls sideways by ${overflow} px`);
      await context.close();
    }
  }
}

// ---- The journey ------------------------------------------------------------------------

const browser = await chromium.launch({
  executablePath: chromiumPath,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
const page = await context.newPage();
const pageErrors = [];
const nav = (name) => page.getByRole("navigation", { name: "Main" }).getByRole("link", { name, exact: true });
page.on("pageerror", (error) => pageErrors.push(error.message));
page.on("console", (message) => {
  if (message.type() === "error") pageErrors.push(message.text());
});

try {
  step("the app opens on its sign-in page");
  await page.goto(`${base}/`);
  await page.getByRole("heading", { name: "Sign in to MetaChat" }).waitFor();
  await axe(page, "sign in");
  await shoot(page, "signin-desktop-light");

  step("a wrong password is refused on the page, naming the problem");
  await page.getByLabel("Username or e-mail").fill("nobody_here");
  await page.getByLabel("Password").fill("not the password at all");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").filter({ hasText: /password is wrong/i }).waitFor();

  step("sign up: a bad e-mail is named beside its field, then the account is made");
  await page.getByRole("link", { name: "Create an account" }).click();
  await page.getByRole("heading", { name: "Create your account" }).waitFor();
  await axe(page, "sign up");
  await page.getByLabel("Username").fill(writer.username);
  await page.getByLabel("E-mail").fill("not-an-email");
  await page.getByLabel("First name").fill(writer.firstName);
  await page.getByLabel("Last name").fill(writer.lastName);
  await page.locator("#f-password").fill(writer.password);
  await page.getByLabel("Password again").fill(writer.password);
  await page.getByRole("button", { name: "Create my account" }).click();
  await page.locator("#email-error, #f-email-error").first().waitFor();
  assert.equal(await page.getByLabel("E-mail").getAttribute("aria-invalid"), "true");
  await page.getByLabel("E-mail").fill(writer.email);
  await page.getByRole("button", { name: "Create my account" }).click();
  await page.getByRole("heading", { name: "Write", exact: true }).waitFor();
  await apiSignIn();
  const created = await call("GET", `/users/${userId}`);
  assert.equal(created.status, 200);
  assert.equal(created.body.username, writer.username);
  assert.equal(created.body.email, writer.email);

  step("before any diary write, the timeline and insights open (the sign-up is no diary write to wait for)");
  await nav("Timeline").click();
  await page.getByText("Nothing written yet.").waitFor();
  await nav("Insights").click();
  await page.getByRole("heading", { name: "Entries per day" }).waitFor();
  await nav("Write").click();
  await page.getByRole("heading", { name: "Write", exact: true }).waitFor();

  step("the skip link moves focus past the navigation, staying on the page");
  assert.equal(await page.evaluate(() => document.querySelector("a[href], button, input, textarea, select").textContent), "Skip to content");
  await page.locator("a.skip").focus();
  await page.keyboard.press("Enter");
  assert.equal(await page.evaluate(() => document.activeElement.id), "main");
  await page.getByRole("heading", { name: "Write", exact: true }).waitFor();

  step("the cookies: the access token is out of the script's reach, and a write without the CSRF token is refused");
  const cookies = await context.cookies();
  const access = cookies.find((c) => c.name === "__Host-metachat-access");
  assert.ok(access && access.httpOnly && access.secure && access.sameSite === "Strict", JSON.stringify(cookies));
  assert.ok(!(await page.evaluate(() => document.cookie)).includes("__Host-metachat-access"));
  const forged = await page.evaluate(async (id) => {
    const r = await fetch("/diary/entries", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ userId: id, title: "forged", content: "forged" }) });
    return { status: r.status, body: await r.json() };
  }, userId);
  assert.equal(forged.status, 403, JSON.stringify(forged));
  assert.match(forged.body.error.message, /X-CSRF-Token/);
  const read = await page.evaluate(async (id) => (await fetch(`/users/${id}`)).status, userId);
  assert.equal(read, 200);

  step("write in a session: the draft survives a reload, then the entry is saved in the session");
  await page.getByRole("button", { name: "Start a writing session" }).click();
  await page.getByText("Session running for").waitFor();
  const sessionId = await page.evaluate((id) => localStorage.getItem(`metachat.session.${id}`), userId);
  assert.ok(sessionId);
  await page.getByLabel("Title").fill("A walk by the river");
  await page.getByLabel("Entry").fill("I walked by the river this morning. The water was loud and bright, and I felt calm and grateful.");
  await page.getByLabel("Tags").fill("walks, gratitude");
  await page.getByText("Draft kept on this device").waitFor();
  await page.reload();
  await page.getByText("Restored your unsaved draft").waitFor();
  assert.equal(await page.getByLabel("Title").inputValue(), "A walk by the river");
  await shoot(page, "write-desktop-light");
  await axe(page, "write");
  await page.getByRole("button", { name: "Save entry" }).click();
  await page.getByRole("heading", { name: "A walk by the river" }).waitFor();
  const entryId = page.url().split("#/entry/")[1];
  let stored = await call("GET", `/diary/entries/${entryId}`);
  assert.equal(stored.status, 200);
  assert.equal(stored.body.content, "I walked by the river this morning. The water was loud and bright, and I felt calm and grateful.");
  assert.deepEqual(stored.body.tags, ["walks", "gratitude"]);
  assert.equal(stored.body.sessionId, sessionId);
  assert.equal(await page.evaluate((id) => localStorage.getItem(`metachat.draft.${id}.new`), userId), null);

  step("end the session");
  await nav("Write").click();
  await page.getByRole("button", { name: "End session" }).click();
  await page.getByRole("button", { name: "Start a writing session" }).waitFor();
  const session = await call("GET", `/diary/sessions/${sessionId}`);
  assert.equal(session.body.status, "ended");

  step("edit the entry: the new text is stored and the history shows both versions");
  await page.goto(`${base}/#/entry/${entryId}`);
  await page.getByRole("link", { name: "Edit" }).click();
  await page.getByRole("heading", { name: "Edit entry" }).waitFor();
  await page.getByLabel("Entry").fill("I walked by the river this morning. Later it rained, and the rain was soft.");
  await page.getByRole("button", { name: "Save changes" }).click();
  await page.getByText("Later it rained, and the rain was soft.").first().waitFor();
  stored = await call("GET", `/diary/entries/${entryId}`);
  assert.equal(stored.body.content, "I walked by the river this morning. Later it rained, and the rain was soft.");
  assert.equal(stored.body.version >= 2, true);
  await page.getByText("2 versions, newest first.").waitFor();
  await page.getByText(/Version 1 · written/).click();
  await page.getByText("The water was loud and bright").waitFor();

  step("seed a history through the API: 45 entries over the last weeks, one a year ago today");
  const now = new Date();
  for (let i = 0; i < 45; i++) {
    const at = new Date(now.getTime() - (i + 1) * 9 * 3600 * 1000);
    const r = await call("POST", "/diary/entries", {
      userId, title: `Day note ${i}`, content: `Note ${i}: a quiet evening with a book and tea.`,
      tags: i % 3 === 0 ? ["reading"] : ["evening"], createdAt: at.toISOString(),
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
  }
  const yearAgo = new Date(now.getFullYear() - 1, now.getMonth(), now.getDate(), 12, 0, 0);
  const old = await call("POST", "/diary/entries", {
    userId, title: "Last year's harbour", content: "The harbour at noon, gulls everywhere.", tags: ["travel"], createdAt: yearAgo.toISOString(),
  });
  assert.equal(old.status, 201);
  // What a writer writes is shown as written, never run as HTML.
  const markup = await call("POST", "/diary/entries", {
    userId, title: "<img src=x onerror=\"window.__injected=1\">", content: "<script>window.__injected=2</script> & <b>bold</b>",
    tags: ["<i>tag</i>"], createdAt: new Date(now.getTime() - 30 * 24 * 3600 * 1000).toISOString(),
  });
  assert.equal(markup.status, 201, JSON.stringify(markup.body));
  const consistency = markup.headers.get("x-consistency-token");
  await eventually("the list holds every entry", async () => {
    const r = await fetch(`${base}/diary/entries/user/${userId}?limit=100`, { headers: { Authorization: `Bearer ${token}`, "X-Consistency-Token": consistency } });
    return r.status === 200 && (await r.json()).entries.length === 48;
  });
  await page.goto(`${base}/#/entry/${markup.body.id}`);
  await page.getByRole("heading", { name: "<img src=x onerror=\"window.__injected=1\">" }).waitFor();
  await page.getByText("<script>window.__injected=2</script> & <b>bold</b>").first().waitFor();
  await page.getByText("<i>tag</i>").first().waitFor();
  assert.equal(await page.evaluate(() => window.__injected), undefined);
  assert.equal(await page.locator("main img, main script, main b, main i").count(), 0);

  step("two tabs renew an expired access cookie at once, and both stay signed in");
  const second = await context.newPage();
  await second.goto(`${base}/#/timeline`);
  await second.getByRole("heading", { name: "Timeline" }).waitFor();
  await context.clearCookies({ name: "__Host-metachat-access" });
  await Promise.all([page.goto(`${base}/#/settings`), second.goto(`${base}/#/look-back`)]);
  await page.getByRole("heading", { name: "Settings" }).waitFor();
  await second.getByRole("heading", { name: "Look back" }).waitFor();
  await second.reload();
  await second.getByRole("heading", { name: "Look back" }).waitFor();
  assert.equal(await second.evaluate(async () => (await fetch("/auth/session")).status), 200);
  await second.close();

  step("the timeline: grouped by day, more on scrolling, filtered by tag");
  await nav("Timeline").click();
  await page.getByRole("heading", { name: "Timeline" }).waitFor();
  await page.locator("#timeline .entry-card").first().waitFor();
  const firstBatch = await page.locator("#timeline .entry-card").count();
  assert.equal(firstBatch, 20);
  await page.locator("#timeline .entry-card").last().scrollIntoViewIfNeeded();
  await eventually("more entries on scrolling", async () => (await page.locator("#timeline .entry-card").count()) > 20);
  assert.ok((await page.locator("#timeline h2.day").count()) >= 5);
  await page.getByLabel("Tag", { exact: true }).fill("reading");
  await page.getByRole("button", { name: "Filter" }).click();
  await page.locator("#timeline .entry-card").first().waitFor();
  // Each scroll to the end loads what matches in the pages that follow.
  await eventually("every matching entry, scrolling down", async () => {
    await page.keyboard.press("End");
    return page.getByText("That is everything.").isVisible();
  });
  const readingCards = await page.locator("#timeline .entry-card").count();
  assert.equal(readingCards, 15);
  await page.getByRole("link", { name: "Clear" }).click();
  await page.locator("#timeline .entry-card").first().waitFor();

  step("search by meaning finds the river entry");
  await eventually("the river entry is indexed", async () => {
    const r = await call("GET", `/diary/search?userId=${userId}&q=river`);
    return r.status === 503 ? "no model" : r.status === 200 && r.body.results.some((x) => x.entry.id === entryId);
  });
  await page.getByLabel("Search your diary").fill("rain by the water");
  await page.getByRole("button", { name: "Search" }).click();
  await page.getByRole("heading", { name: "Search: rain by the water" }).waitFor();
  const searchModel = (await call("GET", `/diary/search?userId=${userId}&q=river`)).status === 200;
  if (searchModel) {
    await page.locator("#results .entry-card").filter({ hasText: "A walk by the river" }).waitFor();
    const firstHit = await page.locator("#results .entry-card h3").first().textContent();
    assert.equal(firstHit, "A walk by the river");
  } else {
    await page.getByText("Search by meaning needs the sentence-embedding model").waitFor();
  }

  step("look back: the year's heat-map and the entry of a year ago today");
  await nav("Look back").click();
  await page.getByRole("heading", { name: "Your year of writing" }).waitFor();
  await page.getByRole("heading", { name: /1 year ago/ }).waitFor();
  await page.getByText("Last year's harbour").waitFor();
  const cells = await page.locator("figure.heat svg rect").count();
  assert.ok(cells >= 365, `${cells} cells`);

  step("insights: the figures the API gives, as charts");
  await nav("Insights").click();
  await page.getByRole("heading", { name: "Insights" }).waitFor();
  const zone = await page.evaluate(() => Intl.DateTimeFormat().resolvedOptions().timeZone);
  const analytics = await call("GET", `/diary/analytics?userId=${userId}&period=month&timeZone=${encodeURIComponent(zone)}`);
  assert.equal(analytics.status, 200);
  const shownCount = await page.locator(".stat").first().locator("b").textContent();
  assert.equal(Number(shownCount), analytics.body.entryCount);
  await page.getByRole("heading", { name: "Entries per day" }).waitFor();
  await page.getByRole("heading", { name: "Words per day" }).waitFor();
  await page.getByRole("heading", { name: "Mood" }).waitFor();
  await page.getByRole("heading", { name: "Your senses" }).waitFor();
  await page.getByRole("heading", { name: "Your archetype" }).waitFor();
  await page.getByRole("link", { name: "Last year" }).click();
  await page.getByRole("link", { name: "Last year" }).and(page.locator("[aria-current=page]")).waitFor();

  step("settings: the profile and the analysis switch are stored");
  await nav("Settings").click();
  await page.getByRole("heading", { name: "Settings" }).waitFor();
  await page.getByLabel("About you").fill("I write in the evenings.");
  // A picture from the device becomes the avatar: cut square, scaled, kept as a data: address.
  const picture = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAgAAAAGCAIAAABxZ0isAAAAEUlEQVR4nGM4EaCBFTEMpAQAs5U8AfXQ54MAAAAASUVORK5CYII=", "base64");
  await page.locator("#avatar-file").setInputFiles({ name: "me.png", mimeType: "image/png", buffer: picture });
  await page.getByText("New picture chosen").waitFor();
  await page.getByRole("button", { name: "Save profile" }).click();
  await page.getByText("Profile saved.").waitFor();
  const profile = (await call("GET", `/users/${userId}`)).body;
  assert.equal(profile.bio, "I write in the evenings.");
  assert.match(profile.avatar, /^data:image\/jpeg;base64,/);
  await page.locator(".avatar img").waitFor();
  await page.getByLabel("Analyse my writing").uncheck();
  await page.getByText("Analysis is off").waitFor();
  assert.equal((await call("GET", `/users/${userId}/analysis`)).body.enabled, false);
  await page.getByLabel("Analyse my writing").check();
  await page.getByText("Analysis is on").waitFor();
  assert.equal((await call("GET", `/users/${userId}/analysis`)).body.enabled, true);
  const exported = await page.evaluate(async (id) => {
    const r = await fetch(`/users/${id}/export`);
    return { status: r.status, body: await r.json() };
  }, userId);
  assert.equal(exported.status, 200);
  assert.ok(JSON.stringify(exported.body).includes("A walk by the river"));

  step("delete an entry: cancel keeps it, confirming removes it");
  await page.goto(`${base}/#/entry/${entryId}`);
  await page.getByRole("heading", { name: "A walk by the river" }).waitFor();
  await page.getByRole("button", { name: "Delete" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Cancel" }).click();
  assert.equal((await call("GET", `/diary/entries/${entryId}`)).status, 200);
  await page.getByRole("button", { name: "Delete" }).click();
  await axe(page, "delete dialog");
  await page.getByRole("dialog").getByRole("button", { name: "Delete entry" }).click();
  await page.getByRole("heading", { name: "Timeline" }).waitFor();
  assert.equal((await call("GET", `/diary/entries/${entryId}`)).status, 404);

  step("screenshots and accessibility of every main page, desktop and phone, light and dark");
  const storage = await context.storageState();
  const someEntry = (await call("GET", `/diary/entries/user/${userId}?limit=1`)).body.entries[0].id;
  await capture(browser, storage, "#/write", "write", (p) => p.getByRole("heading", { name: "Write", exact: true }).waitFor());
  await capture(browser, storage, "#/timeline", "timeline", (p) => p.locator("#timeline .entry-card").first().waitFor());
  await capture(browser, storage, `#/entry/${someEntry}`, "entry", (p) => p.getByText(/versions?, newest first/).waitFor());
  await capture(browser, storage, "#/look-back", "look-back", (p) => p.getByRole("heading", { name: "On this day" }).and(p.locator("h2")).waitFor().then(() => p.getByText("Last year's harbour").waitFor()));
  await capture(browser, storage, "#/insights?period=month", "insights", (p) => p.getByRole("heading", { name: "Your archetype" }).waitFor());
  await capture(browser, storage, "#/settings", "settings", (p) => p.getByRole("heading", { name: "Erase my account" }).waitFor());

  step("sign out: the cookies no longer sign in; sign in again");
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("heading", { name: "Sign in to MetaChat" }).waitFor();
  assert.equal(await page.evaluate(async () => (await fetch("/auth/session")).status), 401);
  assert.equal((await context.cookies()).filter((c) => c.name.startsWith("__Host-metachat")).length, 0);
  await page.getByLabel("Username or e-mail").fill(writer.email);
  await page.getByLabel("Password").fill(writer.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Timeline" }).waitFor();

  step("erase the account: typed confirmation, then nothing of the writer is left to read");
  await nav("Settings").click();
  await page.getByRole("button", { name: "Erase my account" }).click();
  const confirm = page.getByRole("dialog").getByRole("button", { name: "Erase everything" });
  assert.equal(await confirm.isDisabled(), true);
  await page.getByLabel(`Type ${writer.username} to confirm`).fill(writer.username);
  await confirm.click();
  await page.getByText("Your account and your diary were erased.").waitFor();
  assert.equal((await call("GET", `/users/${userId}`)).status, 404);
  assert.equal((await call("POST", "/auth/token", { login: writer.username, password: writer.password })).status, 401);

  assert.deepEqual(pageErrors.filter((e) => !/status of 4\d\d/.test(e)), [], "errors in the page's console");
  assert.deepEqual(violations, [], "serious or critical accessibility violations");
  console.log(`browser tests: ${steps} steps passed in ${((Date.now() - started) / 1000).toFixed(1)} s; screenshots in ${screenshots}`);
} catch (error) {
  await page.screenshot({ path: `${screenshots}/failure.png`, fullPage: true }).catch(() => {});
  console.error(`browser tests failed at step ${steps}: ${error.stack || error}`);
  console.error(`the page at failure: ${page.url()} (screenshot ${screenshots}/failure.png)`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
