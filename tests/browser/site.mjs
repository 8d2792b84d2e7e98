// The demo site for one test file: a temporary copy of htdocs/, cgi-bin/,
// apps/ and conf/gatehouse.yaml, the real gatehouse binary serving it on a
// port of its own choosing, and Debian's Chromium driven by playwright-core.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const artifacts = path.join(repo, "tests/browser/artifacts");
const binary = process.env.GATEHOUSE_BIN || path.join(repo, "target/debug/gatehouse");
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";

/** Replace `from` (which must be there) in the configuration text. */
function edit(text, from, to) {
  if (!text.includes(from)) {
    throw new Error(`conf/gatehouse.yaml no longer contains ${JSON.stringify(from)}: update tests/browser/site.mjs`);
  }
  return text.replace(from, to);
}

/**
 * How to hide each backend from the demo: the same configuration, with the
 * program (or module) it needs renamed to something that does not exist.
 * The PHP route names php-fpm and php-cgi twice: once for apps/needs.py
 * (whether to start the launcher at all), once for apps/php_fpm_fd0.py
 * (which of the two to run).
 */
const hide = {
  "php-fpm": [["--program, php-fpm,", "--program, no-such-php-fpm,"],
    ["/php_fpm_fd0.py,", "/php_fpm_fd0.py, --php-fpm, no-such-php-fpm,"]],
  "php-cgi": [["--program, php-cgi,", "--program, no-such-php-cgi,"],
    ["--fallback, php-cgi]", "--fallback, no-such-php-cgi]"]],
  flup: [["--module, flup,", "--module, no_such_flup,"]],
};

/**
 * Copy the demo site into a temporary directory and start gatehouse on it.
 * `missing` names backends to pretend are not installed (php-fpm, php-cgi,
 * flup; `true` for all three), to see how the demo degrades without them:
 * the configuration then asks for no-such-php-fpm, no-such-php-cgi and
 * no_such_flup instead. `env` is added to the server's environment, which
 * its managed backends inherit.
 */
export async function startSite({ missing = [], env = {} } = {}) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "gatehouse-demo-"));
  for (const dir of ["htdocs", "cgi-bin", "apps", "conf"]) {
    fs.cpSync(path.join(repo, dir), path.join(root, dir), { recursive: true });
  }
  const scratch = path.join(root, "scratch");
  fs.mkdirSync(scratch);
  const configPath = path.join(root, "conf/gatehouse.yaml");
  let config = fs.readFileSync(configPath, "utf8");
  // Lets stream.py wait for the test (?wait=NAME) and say when it is done.
  config = edit(config, "      GUESTBOOK_DIR: ../var\n", `      GUESTBOOK_DIR: ../var\n      CGI_SCRATCH_DIR: "${scratch}"\n`);
  config = edit(config, "shutdown_grace: 10s", "shutdown_grace: 2s");
  for (const name of missing === true ? Object.keys(hide) : missing) {
    for (const [from, to] of hide[name]) config = edit(config, from, to);
  }
  fs.writeFileSync(configPath, config);

  if (!fs.existsSync(binary)) throw new Error(`${binary} is missing: run cargo build first`);
  const child = spawn(binary, ["--config", configPath, "--listen", "127.0.0.1:0"], {
    cwd: root, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env },
  });
  let log = "";
  child.stdout.on("data", (d) => { log += d; });
  const base = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gatehouse did not start:\n${log}`)), 20000);
    child.stderr.on("data", (d) => {
      log += d;
      const m = /gatehouse listening on (http:\/\/[\d.]+:\d+)/.exec(log);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    child.on("exit", (code) => { clearTimeout(timer); reject(new Error(`gatehouse exited (${code}):\n${log}`)); });
  });
  child.removeAllListeners("exit");

  return {
    root, scratch, base,
    url: (p) => base + p,
    log: () => log,
    async stop() {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      if (child.exitCode === null) child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 8000);
      await exited;
      clearTimeout(timer);
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
}

/** Chromium, headless, with a fresh profile and nothing that phones home. */
export async function startBrowser() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "gatehouse-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 1100, height: 800 },
  });
  return {
    context,
    async stop() {
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** A screenshot in tests/browser/artifacts/NAME.png, of the whole page unless told. */
export async function screenshot(page, name, { fullPage = true } = {}) {
  fs.mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage });
}

/**
 * Where the demo finds a program (php-fpm, php-cgi), or null: the lookup of
 * apps/needs.py itself (PATH, the sbin directories, php-fpm8.2 for php-fpm).
 */
export function findProgram(name) {
  const code = `import sys; sys.path.insert(0, ${JSON.stringify(path.join(repo, "apps"))}); import needs; ` +
    `p = needs.find_program(${JSON.stringify(name)}); print(p or ""); sys.exit(p is None)`;
  const out = spawnSync("python3", ["-c", code], { encoding: "utf8", env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" } });
  return out.status === 0 ? out.stdout.trim() : null;
}

/** Whether a backend the demo can use is installed (CI must have them all). */
export function available(what) {
  const ok = what === "flup"
    ? spawnSync("python3", ["-c", "import flup.server.fcgi"], { stdio: "ignore" }).status === 0
    : findProgram(what) !== null;
  if (!ok && process.env.CI) throw new Error(`${what} is missing under CI (tests/run-all.sh installs it)`);
  return ok;
}

/** Whether a process runs (a zombie, exited but not yet reaped, does not). */
export function running(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** The pids of a process's children (Linux: from /proc). */
export function childrenOf(pid) {
  const out = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}
