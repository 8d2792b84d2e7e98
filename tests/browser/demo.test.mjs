// The demo site in a real browser: every demo reached from the index, used
// the way a visitor would, with a screenshot of each page in artifacts/.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { available, screenshot, startBrowser, startSite } from "./site.mjs";

let site;
let browser;
let page;
const external = [];

before(async () => {
  site = await startSite();
  browser = await startBrowser();
  page = await browser.context.newPage();
  page.on("request", (r) => {
    if (!r.url().startsWith(site.base) && !r.url().startsWith("data:")) external.push(r.url());
  });
});

after(async () => {
  await browser?.stop();
  await site?.stop();
});

/** Go to the index and click the link whose text matches. */
async function fromIndex(linkText) {
  await page.goto(site.url("/"));
  const [response] = await Promise.all([
    page.waitForNavigation(),
    page.getByRole("link", { name: linkText, exact: true }).click(),
  ]);
  return response;
}

describe("the demo site", () => {
  test("index explains the request path and links every demo", async () => {
    const response = await page.goto(site.url("/"));
    assert.equal(response.status(), 200);
    await assert.doesNotReject(page.getByRole("heading", { name: "How a request reached a program, before WSGI" }).waitFor());
    for (const h of ["The request path", "Static files", "CGI: a process per request (1993)",
      "FastCGI: keep the process (1996)", "Why WSGI followed (2003)"]) {
      assert.equal(await page.getByRole("heading", { name: h }).count(), 1, h);
    }
    const demos = await page.locator("ol.demos li").count();
    assert.equal(demos, 8);
    // Every demo has a line on what to notice.
    for (const text of await page.locator("ol.demos li p").allTextContents()) {
      assert.ok(text.trim().length > 40, text);
    }
    // The stylesheet applied (no external resources, so it has to be ours).
    const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert.equal(bg, "rgb(251, 250, 246)");
    await screenshot(page, "01-index");
  });

  test("index is readable on a phone", async () => {
    const phone = await browser.context.newPage();
    await phone.setViewportSize({ width: 375, height: 740 });
    await phone.goto(site.url("/"));
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than the phone`);
    const fontSize = await phone.evaluate(() => parseFloat(getComputedStyle(document.querySelector("main p")).fontSize));
    assert.ok(fontSize >= 15, `body text ${fontSize}px`);
    await screenshot(phone, "02-index-phone", { fullPage: false });
    await phone.locator("#demos").scrollIntoViewIfNeeded();
    await phone.evaluate(() => document.getElementById("demos").scrollIntoView());
    await screenshot(phone, "02-index-phone-demos", { fullPage: false });
    await phone.close();
  });

  test("every demo page fits a phone screen", async () => {
    const phone = await browser.context.newPage();
    await phone.setViewportSize({ width: 375, height: 740 });
    const pages = { env: "/cgi-bin/env.py", form: "/cgi-bin/form.py?greeting=hello", guestbook: "/cgi-bin/guestbook.py",
      upload: "/cgi-bin/upload.py", stream: "/cgi-bin/stream.py?format=html&n=3&delay=0", timing: "/timing.html",
      php: "/php/", wsgi: "/wsgi/" };
    for (const [name, url] of Object.entries(pages)) {
      await phone.goto(site.url(url));
      if (name === "timing") await phone.locator("body[data-timing=done]").waitFor({ timeout: 60_000 });
      const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${url} is ${overflow}px wider than the phone`);
      if (["timing", "stream", "guestbook"].includes(name)) await screenshot(phone, `phone-${name}`, { fullPage: false });
    }
    await phone.close();
  });

  test("environment viewer shows the request's own variables", async () => {
    const response = await fromIndex("Environment viewer");
    assert.equal(response.status(), 200);
    const value = (name) => page.locator("tr", { has: page.locator("th", { hasText: new RegExp(`^${name}$`) }) }).locator("td");
    assert.equal(await value("QUERY_STRING").textContent(), "answer=42");
    assert.equal(await value("REQUEST_METHOD").textContent(), "GET");
    assert.match(await value("HTTP_USER_AGENT").textContent(), /Chrome/);
    assert.equal(await value("GATEWAY_INTERFACE").textContent(), "CGI/1.1");
    await screenshot(page, "03-env");
  });

  test("form round-trips GET and POST", async () => {
    await fromIndex("A form, by GET and by POST");
    await page.locator("#get-form input[name=greeting]").fill("hi there");
    await Promise.all([page.waitForNavigation(), page.locator("#get-form button").click()]);
    assert.match(page.url(), /\?greeting=hi\+there$/);
    assert.equal(await page.locator("h1").textContent(), "Form (GET)");
    assert.equal(await page.locator("#fields tbody tr").first().locator("td").last().textContent(), "hi there");

    await page.locator("#post-form input[name=name]").fill("Zoë <b>bold</b>");
    await page.locator("#post-form textarea[name=message]").fill("line one & two");
    const [response] = await Promise.all([page.waitForNavigation(), page.locator("#post-form button").click()]);
    assert.equal(response.request().method(), "POST");
    assert.equal(await page.locator("h1").textContent(), "Form (POST)");
    const rows = page.locator("#fields tbody tr");
    assert.deepEqual(await rows.locator("th").allTextContents(), ["name", "message"]);
    assert.deepEqual(await rows.locator("td:last-child").allTextContents(), ["Zoë <b>bold</b>", "line one & two"]);
    assert.equal(await page.locator("#fields b").count(), 0, "markup from the form was escaped");
    await screenshot(page, "04-form-post");
  });

  test("guestbook: a post shows up as an entry", async () => {
    await fromIndex("Guestbook");
    const token = `hello from the browser test ${crypto.randomUUID()}`;
    const before = Number(await page.locator("#count").textContent());
    await page.locator("input[name=name]").fill("Ada <script>");
    await page.locator("textarea[name=message]").fill(token);
    const [response] = await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Sign the guestbook" }).click()]);
    // Post/Redirect/Get: we land on the list by GET.
    assert.equal(response.request().method(), "GET");
    assert.equal(response.request().redirectedFrom()?.method(), "POST");
    const entry = page.locator("li.entry", { hasText: token });
    await entry.waitFor();
    assert.equal(await entry.locator("strong").textContent(), "Ada <script>");
    assert.equal(Number(await page.locator("#count").textContent()), before + 1);
    assert.ok(fs.existsSync(path.join(site.root, "var/guestbook.jsonl")), "data file outside htdocs");
    assert.ok(!fs.existsSync(path.join(site.root, "htdocs/guestbook.jsonl")));
    await screenshot(page, "05-guestbook");
  });

  test("upload reports the sha256 of what arrived", async () => {
    await fromIndex("File upload");
    await screenshot(page, "06-upload-form");
    const data = crypto.randomBytes(150_000);
    await page.locator("input[type=file]").setInputFiles({ name: "sample.bin", mimeType: "application/octet-stream", buffer: data });
    await page.locator("input[name=note]").fill("a note");
    await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Upload" }).click()]);
    assert.equal(await page.locator("h1").textContent(), "Uploaded");
    const row = page.locator("#parts tbody tr", { hasText: "sample.bin" });
    assert.equal(await row.locator(".sha256").textContent(), crypto.createHash("sha256").update(data).digest("hex"));
    assert.equal(await row.locator(".num").textContent(), (150_000).toLocaleString("en-US"));
    await screenshot(page, "07-upload-result");
  });

  test("streaming: the first line is on screen while the program is still running", async () => {
    await page.goto(site.url("/"));
    const href = await page.getByRole("link", { name: "Streaming output" }).getAttribute("href");
    assert.match(href, /^\/cgi-bin\/stream\.py\?format=html/);
    // The program prints its first line, then waits until the file `go`
    // appears in the scratch dir; it writes `finished` after its last line.
    const go = path.join(site.scratch, "go");
    const finished = path.join(site.scratch, "finished");
    const url = new URL(href, site.base);
    for (const [k, v] of Object.entries({ n: "4", delay: "0.1", wait: "go", marker: "finished" })) url.searchParams.set(k, v);
    await page.goto(url.href, { waitUntil: "commit" });
    await page.locator("#step-1").waitFor();
    assert.match(await page.locator("#step-1").textContent(), /^step 1 of 4/);
    assert.equal(await page.locator("#step-4").count(), 0);
    assert.equal(await page.locator("#done").count(), 0);
    assert.ok(!fs.existsSync(finished), "the program has not finished");
    await screenshot(page, "08-stream-first-line");
    fs.writeFileSync(go, "");
    await page.locator("#done").waitFor();
    assert.equal(await page.locator("#lines li").count(), 4);
    await page.waitForLoadState("load");
    await screenshot(page, "09-stream-done");
  });

  test("timing page measures CGI against FastCGI live", async () => {
    const response = await fromIndex("CGI or FastCGI: a stopwatch");
    assert.equal(response.status(), 200);
    await page.locator("body[data-timing=done]").waitFor({ timeout: 60_000 });
    const cell = (row, k) => page.locator(`#row-${row} td[data-k=${k}]`).textContent();
    const n = Number(await page.locator("#count").inputValue());
    assert.equal(Number(await cell("cgi", "n")), n);
    assert.equal(Number(await cell("fcgi", "n")), n);
    // A new process per CGI request; the same long-lived one(s) for FastCGI.
    assert.equal(Number(await cell("cgi", "pids")), n);
    assert.ok(Number(await cell("fcgi", "pids")) <= 2);
    for (const row of ["cgi", "fcgi"]) {
      const median = parseFloat(await cell(row, "median"));
      assert.ok(median > 0 && Number.isFinite(median), `${row} median ${median}`);
    }
    assert.match(await page.locator("#verdict").textContent(), /processes/);
    await screenshot(page, "10-timing");
  });

  test("PHP page through php-fpm", async () => {
    const response = await fromIndex("PHP through FastCGI");
    // php-fpm; else php-cgi stands in (apps/php_fpm_fd0.py --fallback); else an explanation.
    const fpm = available("php-fpm");
    if (!fpm && !available("php-cgi")) {
      assert.equal(response.status(), 503);
      assert.equal(await page.locator("h1").textContent(), "PHP is not installed");
      assert.match(await page.locator("pre").textContent(), /apt-get install php-fpm/);
      return;
    }
    assert.equal(response.status(), 200);
    assert.equal(await page.locator("h1").textContent(), "Hello, world!");
    assert.equal(await page.locator("#sapi").textContent(), fpm ? "fpm-fcgi" : "cgi-fcgi");
    assert.equal(await page.locator("#server").textContent(), fpm ? "php-fpm" : "php-cgi");
    const pid = Number(await page.locator("#pid").textContent());
    const master = Number(await page.locator("#master").textContent());
    assert.ok(pid > 0 && master > 0 && pid !== master, `worker ${pid}, master ${master}`);
    if (fpm) {
      // The master is the very process gatehouse started: the launcher became php-fpm.
      assert.match(site.log(), new RegExp(`managed fastcgi backend running pid=${master} .*php_fpm_fd0\\.py`));
      assert.match(site.log(), /NOTICE: using inherited socket fd=3, "\/proc\/self\/fd\/3"/);
    }
    await page.locator("input[name=name]").fill("Ada & <Grace>");
    await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Say hello" }).click()]);
    assert.equal(await page.locator("h1").textContent(), "Hello, Ada & <Grace>!");
    assert.equal(Number(await page.locator("#master").textContent()), master);
    await screenshot(page, "11-php");
  });

  test("PHP: the same four workers answer, twelve requests at a time", { skip: !available("php-fpm") && "no php-fpm" }, async () => {
    const pids = new Set();
    const masters = new Set();
    for (let round = 0; round < 5; round++) {
      const pages = await Promise.all(Array.from({ length: 12 }, () =>
        page.request.get(site.url("/php/")).then(async (r) => {
          assert.equal(r.status(), 200);
          return r.text();
        })));
      for (const html of pages) {
        pids.add(/id="pid">(\d+)</.exec(html)[1]);
        masters.add(/id="master">(\d+)</.exec(html)[1]);
      }
    }
    assert.equal(masters.size, 1);
    assert.ok(pids.size >= 1 && pids.size <= 4, `workers: ${[...pids]}`);
  });

  test("WSGI application through flup", async () => {
    const response = await fromIndex("A WSGI application through flup");
    if (!available("flup")) {
      assert.equal(response.status(), 503);
      assert.equal(await page.locator("h1").textContent(), "flup is not installed");
      return;
    }
    assert.equal(response.status(), 200);
    assert.equal(await page.locator("h1").textContent(), "Hello from a WSGI application");
    const value = (name) => page.locator("tr", { has: page.locator("th", { hasText: new RegExp(`^${name.replace(".", "\\.")}$`) }) }).locator("td");
    assert.equal(await value("SCRIPT_NAME").textContent(), "/wsgi");
    assert.equal(await value("PATH_INFO").textContent(), "/");
    assert.equal(await value("wsgi.url_scheme").textContent(), "'http'");
    await screenshot(page, "12-wsgi");
  });

  test("the smaller programs answer too", async () => {
    for (const [link, expected] of [["hello.py", "Hello from a Python CGI script"], ["hello.sh", "Hello from sh: GET /cgi-bin/hello.sh"],
      ["nph-hello.py", "Hello from an NPH script"], ["redirect.py?local=hello", "Hello from a Python CGI script"]]) {
      const response = await fromIndex(link);
      assert.equal(response.status(), 200, link);
      assert.match(await page.locator("body").textContent(), new RegExp(expected.replace(/[.?]/g, "\\$&")), link);
    }
  });

  test("nothing was loaded from anywhere but this server", () => {
    assert.deepEqual(external, []);
  });
});
