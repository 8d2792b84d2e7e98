// The demo on a machine without php-fpm, php-cgi and flup: the same
// configuration with those names pointing at nothing. The PHP and WSGI pages
// explain how to install what is missing (503) instead of failing with a
// bare 502, and everything else, the FastCGI half of the timing page
// included, still works. Then the test "installs" php-cgi, and php-fpm, under
// those names and watches the PHP page pick them up.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { available, findProgram, screenshot, startBrowser, startSite } from "./site.mjs";

let site;
let browser;
let page;
// On the server's PATH: where the test "installs" no-such-php-cgi and no-such-php-fpm later.
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

test("PHP page says how to install php-fpm", async () => {
  const response = await page.goto(site.url("/php/"));
  assert.equal(response.status(), 503);
  assert.equal(await page.locator("h1").textContent(), "PHP is not installed");
  assert.match(await page.locator("pre").textContent(), /apt-get install php-fpm/);
  assert.match(await page.locator(".lede").textContent(), /no-such-php-fpm or no-such-php-cgi/);
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
  assert.match(log, /needs\.py: missing one of the programs no-such-php-fpm or no-such-php-cgi/);
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

/** Load /php/ until it answers `status` (the backend restarts in between). */
async function phpPageUntil(status, check = () => true) {
  const deadline = Date.now() + 30_000;
  let last;
  while (Date.now() < deadline) {
    last = (await page.goto(site.url("/php/"))).status();
    if (last === status && await check()) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.fail(`/php/ still answers ${last}`);
}

test("with php-cgi alone, php-cgi stands in for php-fpm, without a restart", { skip: !available("php-cgi") && "no php-cgi" }, async () => {
  fs.symlinkSync(findProgram("php-cgi"), path.join(bin, "no-such-php-cgi"));
  await phpPageUntil(200);
  assert.equal(await page.locator("h1").textContent(), "Hello, world!");
  assert.equal(await page.locator("#sapi").textContent(), "cgi-fcgi");
  assert.match(site.log(), /no-such-php-cgi is there now; handing over/);
  assert.match(site.log(), /php_fpm_fd0\.py: no no-such-php-fpm; running \S*no-such-php-cgi with 4 children/);
  await screenshot(page, "13-php-cgi-fallback");
});

test("once php-fpm is there too, the next start of the backend runs it", { skip: !(available("php-cgi") && available("php-fpm")) && "no php-cgi or php-fpm" }, async () => {
  fs.symlinkSync(findProgram("php-fpm"), path.join(bin, "no-such-php-fpm"));
  // php-cgi keeps serving until it stops: stop its master, as a crash would.
  const master = Number(await page.locator("#master").textContent());
  process.kill(master, "SIGTERM");
  await phpPageUntil(200, async () => await page.locator("#sapi").textContent() === "fpm-fcgi");
  assert.equal(await page.locator("#server").textContent(), "php-fpm");
  assert.match(site.log(), /php_fpm_fd0\.py: \S*no-such-php-fpm on \S+ \(fd 3\), 4 workers/);
});
