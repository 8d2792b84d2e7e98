<?php
// The PHP demo page: run by php-fpm, which gatehouse starts as a managed
// FastCGI backend through apps/php_fpm_fd0.py (conf/gatehouse.yaml), by
// php-cgi where only that is installed, or by a php-fpm you run yourself
// (conf/php-fpm.yaml).
header('Content-Type: text/html; charset=utf-8');
header('Cache-Control: no-store');
$name = isset($_GET['name']) && $_GET['name'] !== '' ? $_GET['name'] : 'world';
$e = function ($s) { return htmlspecialchars((string) $s, ENT_QUOTES, 'UTF-8'); };
// PHP_SAPI names the server PHP runs in: fpm-fcgi is php-fpm, cgi-fcgi php-cgi.
$servers = ['fpm-fcgi' => 'php-fpm', 'cgi-fcgi' => 'php-cgi'];
$server = isset($servers[PHP_SAPI]) ? $servers[PHP_SAPI] : PHP_SAPI;
// php-fpm, and php-cgi with PHP_FCGI_CHILDREN, run a master that keeps workers.
$pooled = PHP_SAPI === 'fpm-fcgi' || getenv('PHP_FCGI_CHILDREN');
$parent = $pooled && function_exists('posix_getppid') ? posix_getppid() : null;
$keys = ['GATEWAY_INTERFACE', 'REQUEST_METHOD', 'REQUEST_URI', 'SCRIPT_NAME', 'SCRIPT_FILENAME',
         'PATH_INFO', 'QUERY_STRING', 'SERVER_SOFTWARE', 'APP_ENV'];
?><!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>PHP through FastCGI · gatehouse</title><link rel="stylesheet" href="/style.css"></head>
<body><header class="site"><a href="/">gatehouse</a><span>FastCGI demo</span></header><main>
<h1>Hello, <?= $e($name) ?>!</h1>
<p class="lede">PHP <?= $e(PHP_VERSION) ?> ran this page in <strong id="server"><?= $e($server) ?></strong>
(the <code id="sapi"><?= $e(PHP_SAPI) ?></code> SAPI), in worker process <strong id="pid"><?= getmypid() ?></strong><?php
if ($parent !== null): ?>, one of the workers that master process <strong id="master"><?= $parent ?></strong>
keeps running<?php endif; ?>. gatehouse matched the path against <code>\.php</code>, found the
script under its root and sent the request over a Unix socket as FastCGI records.
Reload: the same few workers answer every time.</p>
<form method="get" class="card">
<label>Your name <input name="name" value="<?= $e($name === 'world' ? '' : $name) ?>"></label>
<button>Say hello</button>
</form>
<h2>What PHP was given</h2>
<div class="table-wrap"><table>
<thead><tr><th>$_SERVER key</th><th>value</th></tr></thead>
<tbody>
<?php foreach ($keys as $k): ?>
<tr><th><?= $e($k) ?></th><td><?= isset($_SERVER[$k]) ? $e($_SERVER[$k]) : '<em>(unset)</em>' ?></td></tr>
<?php endforeach; ?>
</tbody></table></div>
<p class="note"><a href="/php/info.php/some/path/info?a=1&amp;b=2">info.php/some/path/info</a>
shows how a path is split into <code>SCRIPT_NAME</code> and <code>PATH_INFO</code>
(<code>split_path_info</code> in the configuration).</p>
</main></body></html>
