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
 * Copy the demo site into a temporary directory and start gatehouse on it.
 * `missing: true` names backends that do not exist (php-cgi, flup), to see
 * how the demo degrades on a machine without them. `env` is added to the
 * server's environment, which its managed backends inherit.
 */
export async function startSite({ missing = false, env = {} } = {}) {
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
  if (missing) {
    config = edit(config, "--program, php-cgi,", "--program, no-such-php-cgi,");
    config = edit(config, "--module, flup,", "--module, no_such_flup,");
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

/** Whether a backend the demo can use is installed (CI must have both). */
export function available(what) {
  const probe = what === "php-cgi"
    ? ["sh", ["-c", "command -v php-cgi"]]
    : ["python3", ["-c", "import flup.server.fcgi"]];
  const ok = spawnSync(...probe, { stdio: "ignore" }).status === 0;
  if (!ok && process.env.CI) throw new Error(`${what} is missing under CI (tests/run-all.sh installs it)`);
  return ok;
}
