// Times N sequential requests to the CGI and the FastCGI hello, live.
"use strict";
const endpoints = { cgi: "/cgi-bin/hello-dual.py", fcgi: "/fcgi/hello" };
const $ = (id) => document.getElementById(id);

async function once(url) {
  const started = performance.now();
  const response = await fetch(url, { cache: "no-store" });
  const text = await response.text();
  const ms = performance.now() - started;
  if (!response.ok) throw new Error(`${url}: ${response.status} ${response.statusText}`);
  const fields = Object.fromEntries(text.split("\n").filter((l) => l.includes("=")).map((l) => l.split(/=(.*)/s).slice(0, 2)));
  return { ms, pid: fields.pid, served: Number(fields.requests_in_this_process) };
}

function summary(samples) {
  const ms = samples.map((s) => s.ms).sort((a, b) => a - b);
  const mid = Math.floor(ms.length / 2);
  const median = ms.length % 2 ? ms[mid] : (ms[mid - 1] + ms[mid]) / 2;
  const total = ms.reduce((a, b) => a + b, 0);
  return {
    n: ms.length, median, mean: total / ms.length, min: ms[0],
    rate: 1000 * ms.length / total, pids: new Set(samples.map((s) => s.pid)).size,
    maxServed: Math.max(...samples.map((s) => s.served)),
  };
}

const fmt = { n: String, median: (v) => v.toFixed(1) + " ms", mean: (v) => v.toFixed(1) + " ms",
  min: (v) => v.toFixed(1) + " ms", rate: (v) => v.toFixed(0), pids: String };

function show(kind, s) {
  for (const td of $("row-" + kind).querySelectorAll("td")) td.textContent = fmt[td.dataset.k](s[td.dataset.k]);
  $("median-" + kind).textContent = s.median.toFixed(1) + " ms";
}

async function run() {
  const n = Number($("count").value);
  $("run").disabled = true;
  try {
    await once(endpoints.cgi);
    await once(endpoints.fcgi);
    const results = {};
    // Interleaved, so both see the same machine load.
    const samples = { cgi: [], fcgi: [] };
    for (let i = 0; i < n; i++) {
      for (const kind of ["cgi", "fcgi"]) {
        $("status").textContent = `Request ${i + 1} of ${n}…`;
        samples[kind].push(await once(endpoints[kind]));
      }
    }
    for (const kind of ["cgi", "fcgi"]) { results[kind] = summary(samples[kind]); show(kind, results[kind]); }
    const slowest = Math.max(results.cgi.median, results.fcgi.median);
    $("bar-cgi").style.width = (100 * results.cgi.median / slowest) + "%";
    $("bar-fcgi").style.width = (100 * results.fcgi.median / slowest) + "%";
    $("bars").hidden = false;
    $("results").hidden = false;
    const ratio = results.cgi.median / results.fcgi.median;
    $("verdict").textContent = ratio >= 1
      ? `FastCGI answered ${ratio.toFixed(1)}× faster (median). CGI used ${results.cgi.pids} processes for ${n} requests; ${results.fcgi.pids === 1 ? "FastCGI used 1, which has" : `FastCGI used ${results.fcgi.pids}; the busiest has`} now served ${results.fcgi.maxServed} requests.`
      : `This time CGI was as fast as FastCGI (median ${results.cgi.median.toFixed(1)} ms against ${results.fcgi.median.toFixed(1)} ms). CGI still used ${results.cgi.pids} processes; FastCGI ${results.fcgi.pids}.`;
    $("status").textContent = `Done: ${n} requests to each, measured just now.`;
    document.body.dataset.timing = "done";
  } catch (err) {
    $("status").textContent = "The measurement failed: " + err.message;
    document.body.dataset.timing = "failed";
  } finally {
    $("run").disabled = false;
  }
}

$("run").addEventListener("click", run);
run();
