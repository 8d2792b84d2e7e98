<?php
// Shows the FastCGI parameters the script received (text/plain).
header('Content-Type: text/plain; charset=utf-8');
$keys = ['REQUEST_METHOD', 'REQUEST_URI', 'SCRIPT_NAME', 'SCRIPT_FILENAME', 'PATH_INFO',
         'PATH_TRANSLATED', 'QUERY_STRING', 'DOCUMENT_ROOT', 'CONTENT_TYPE', 'CONTENT_LENGTH',
         'SERVER_SOFTWARE', 'SERVER_NAME', 'SERVER_PORT', 'REMOTE_ADDR', 'HTTPS', 'APP_ENV'];
foreach ($keys as $k) {
    echo str_pad($k, 16), ' = ', isset($_SERVER[$k]) ? $_SERVER[$k] : '(unset)', "\n";
}
if ($_POST) {
    echo "\n\$_POST:\n";
    foreach ($_POST as $k => $v) {
        echo "  $k = $v\n";
    }
}
