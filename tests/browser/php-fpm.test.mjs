// php-fpm as a managed backend (apps/php_fpm_fd0.py): what happens when its
// master stops or dies. gatehouse restarts it on the same socket, and the
// PHP page keeps working: php-fpm's exit must not have unlinked gatehouse's
// socket file, and workers left behind by a master killed outright must not
// linger.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { available, childrenOf, running, startBrowser, startSite } from "./site.mjs";

const skip = !available("php-fpm") && "no php-fpm";
let site;
let browser;
let page;

before(async () => {
  if (skip) return;
  site = await startSite();
  browser = await startBrowser();
  page = await browser.context.newPage();
});
after(async () => {
  await browser?.stop();
  await site?.stop();
});

/** The php-fpm master and worker pids the PHP page reports. */
async function phpPids() {
  const response = await page.goto(site.url("/php/"));
  if (response.status() !== 200) return null;
  assert.equal(await page.locator("#sapi").textContent(), "fpm-fcgi");
  return { master: Number(await page.locator("#master").textContent()), worker: Number(await page.locator("#pid").textContent()) };
}

/** Wait until the page is served by a master other than `old`. */
async function newMaster(old) {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const pids = await phpPids();
    if (pids && pids.master !== old) return pids;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.fail(`no php-fpm master but ${old} answers /php/ (gatehouse log:\n${site.log()})`);
}

async function gone(pids) {
  const deadline = Date.now() + 10_000;
  while (pids.some(running) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  return pids.filter(running);
}

test("a php-fpm master that stops (SIGTERM) is restarted on the same socket", { skip }, async () => {
  const first = await phpPids();
  assert.ok(first, "/php/ answers");
  const workers = childrenOf(first.master);
  assert.equal(workers.length, 4, `workers of ${first.master}: ${workers}`);
  process.kill(first.master, "SIGTERM");
  // php-fpm unlinks the path `listen` names when it exits; were that
  // gatehouse's socket file, gatehouse could not reach the new master.
  const second = await newMaster(first.master);
  assert.deepEqual(await gone(workers), []);
  assert.match(site.log(), new RegExp(`managed fastcgi backend exited; restarting pid=${first.master} `));
  assert.match(site.log(), new RegExp(`managed fastcgi backend running pid=${second.master} .*php_fpm_fd0`));
});

test("workers of a master killed outright are stopped before the next one starts", { skip }, async () => {
  const before = await phpPids();
  const orphans = childrenOf(before.master);
  assert.equal(orphans.length, 4);
  process.kill(before.master, "SIGKILL");
  await newMaster(before.master);
  assert.deepEqual(await gone(orphans), []);
  for (const pid of orphans) {
    assert.match(site.log(), new RegExp(`stopping pid ${pid}, a worker of a php-fpm master that died`));
  }
  // Every answer now comes from the new master's workers.
  const now = await phpPids();
  for (let i = 0; i < 8; i++) {
    const again = await phpPids();
    assert.equal(again.master, now.master);
    assert.ok(!orphans.includes(again.worker));
  }
});
