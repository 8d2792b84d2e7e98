<?php
// The PHP demo page behind gatehouse (conf/php-fpm.yaml).
header('Content-Type: text/html; charset=utf-8');
$name = isset($_GET['name']) ? $_GET['name'] : 'world';
?><!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>gatehouse + PHP</title><link rel="stylesheet" href="/style.css"></head>
<body>
<h1>Hello, <?= htmlspecialchars($name, ENT_QUOTES) ?>!</h1>
<p>This page was run by PHP <?= PHP_VERSION ?> (<?= htmlspecialchars(PHP_SAPI) ?>) behind gatehouse.</p>
<form method="post" action="/php/info.php/from/the/form">
  <input name="message" value="hello"> <button>POST it to info.php</button>
</form>
<p><a href="/php/info.php/some/path/info?a=1&amp;b=2">See what the script was given</a></p>
</body>
</html>
