// The demo on a machine without php-cgi and flup: the same configuration
// with those names pointing at nothing. The PHP and WSGI pages explain how
// to install what is missing (503) instead of failing with a bare 502, and
// everything else, the FastCGI half of the timing page included, still works.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { available, screenshot, startBrowser, startSite } from "./site.mjs";

let site;
let browser;
let page;
// On the server's PATH: where the test "installs" no-such-php-cgi later.
const bin = fs.mkdtempSync(path.join(os.tmpdir(), "gatehouse-bin-"));

before(async () => {
  site = await startSite({ missing: true, env: { PATH: `${bin}:${process.env.PATH}` } });
  browser = await startBrowser();
  page = await browser.context.newPage();
});
after(async () => {
  await browser?.stop();
  await site?.stop();
  fs.rmSync(bin, { recursive: true, force: true });
});

test("PHP page says how to install php-cgi", async () => {
  const response = await page.goto(site.url("/php/"));
  assert.equal(response.status(), 503);
  assert.equal(await page.locator("h1").textContent(), "PHP is not installed");
  assert.match(await page.locator("pre").textContent(), /apt-get install php-cgi/);
  assert.match(await page.locator(".lede").textContent(), /no-such-php-cgi/);
  await screenshot(page, "13-php-missing");
});

test("WSGI page says how to install flup", async () => {
  const response = await page.goto(site.url("/wsgi/"));
  assert.equal(response.status(), 503);
  assert.equal(await page.locator("h1").textContent(), "flup is not installed");
  assert.match(await page.locator("pre").textContent(), /pip install flup/);
  await screenshot(page, "14-wsgi-missing");
});

test("the missing backends are logged, not restarted in a loop", async () => {
  const log = site.log();
  assert.match(log, /needs\.py: missing the program no-such-php-cgi/);
  assert.match(log, /needs\.py: missing the Python module no_such_flup/);
  assert.doesNotMatch(log, /managed fastcgi backend exited/);
});

test("the rest of the site does not depend on them", async () => {
  await page.goto(site.url("/timing.html"));
  await page.locator("body[data-timing=done]").waitFor({ timeout: 60_000 });
  assert.equal(await page.locator("#row-fcgi td[data-k=n]").textContent(), await page.locator("#count").inputValue());
  const response = await page.goto(site.url("/cgi-bin/guestbook.py"));
  assert.equal(response.status(), 200);
});

test("once installed, the real backend takes over without a restart", { skip: !available("php-cgi") && "no php-cgi" }, async () => {
  const phpCgi = execFileSync("sh", ["-c", "command -v php-cgi"], { encoding: "utf8" }).trim();
  fs.symlinkSync(phpCgi, path.join(bin, "no-such-php-cgi"));
  const deadline = Date.now() + 30_000;
  let status;
  while (Date.now() < deadline) {
    status = (await page.goto(site.url("/php/"))).status();
    if (status === 200) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.equal(status, 200);
  assert.equal(await page.locator("h1").textContent(), "Hello, world!");
  assert.match(site.log(), /no-such-php-cgi is there now; handing over/);
});
