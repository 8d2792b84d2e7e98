// The guestbook under concurrent posts: 50 CGI processes appending to one
// file at once lose no entry and corrupt none (plain HTTP, no browser).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { startSite } from "./site.mjs";

const POSTS = 50;
let site;

before(async () => { site = await startSite(); });
after(async () => { await site?.stop(); });

test(`${POSTS} concurrent guestbook posts make exactly ${POSTS} entries`, async () => {
  // A message long enough that a torn write would show.
  const message = (i) => `entry ${i} ` + `${i}`.repeat(400);
  const responses = await Promise.all(Array.from({ length: POSTS }, (_, i) =>
    fetch(site.url("/cgi-bin/guestbook.py"), {
      method: "POST",
      redirect: "manual",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ name: `poster ${i}`, message: message(i) }),
    })));
  for (const r of responses) {
    assert.equal(r.status, 303, await r.text());
    assert.equal(r.headers.get("location"), "/cgi-bin/guestbook.py");
  }

  const entries = await (await fetch(site.url("/cgi-bin/guestbook.py?format=json"))).json();
  assert.equal(entries.length, POSTS);
  const seen = entries.map((e) => e.message).sort();
  const expected = Array.from({ length: POSTS }, (_, i) => message(i)).sort();
  assert.deepEqual(seen, expected, "every message exactly once, intact");
  assert.equal(new Set(entries.map((e) => e.pid)).size, POSTS, "each post was its own process");

  // The file itself: one whole JSON entry per line, nothing else.
  const lines = fs.readFileSync(path.join(site.root, "var/guestbook.jsonl"), "utf8").split("\n");
  assert.equal(lines.pop(), "", "ends with a newline");
  assert.equal(lines.length, POSTS);
  for (const line of lines) assert.doesNotThrow(() => JSON.parse(line), line.slice(0, 80));

  // And the page says so.
  const page = await (await fetch(site.url("/cgi-bin/guestbook.py"))).text();
  assert.match(page, new RegExp(`<span id="count">${POSTS}</span> entries`));
});

test("guestbook output is escaped and input is checked", async () => {
  const post = (body, type = "application/x-www-form-urlencoded") => fetch(site.url("/cgi-bin/guestbook.py"), {
    method: "POST", redirect: "manual", headers: { "content-type": type }, body,
  });
  assert.equal((await post("name=x&message=")).status, 422);
  assert.equal((await post("{}", "application/json")).status, 415);
  assert.equal((await post(new URLSearchParams({ name: "<img src=x onerror=alert(1)>", message: "<script>alert(1)</script>" }))).status, 303);
  const page = await (await fetch(site.url("/cgi-bin/guestbook.py"))).text();
  assert.ok(!page.includes("<script>alert"), "message escaped");
  assert.ok(!page.includes("<img src=x"), "name escaped");
  assert.ok(page.includes("&lt;script&gt;alert(1)&lt;/script&gt;"));
});
