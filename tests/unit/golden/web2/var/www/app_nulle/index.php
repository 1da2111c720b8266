<?php
// Managed by tp5ha (templates/php/index.php.j2): changes here are overwritten.
// Plain-text page, one "key: value" line each, so that probes can parse it:
//   served-by: <fqdn> <address>     (also in the X-Served-By header)
//   session: <id> hits=<n>          (per-server PHP session: shows affinity)
//   db: visits=<n> id=<id> host=<primary address> | db: unavailable (<reason>)
//   db-replica: visits=<n> host=<replica address> | db-replica: unavailable (<reason>)
// A database or db.php error is written to the web server's error log; the client only
// reads "database error" (never the driver's text: addresses, users, SQL).
// Request trace: one line per request in the web server's error log for this site
// (/var/log/apache2/app_nulle_error.log, written by Apache itself, so nothing under
// /var/log needs to be writable by www-data), read by runbooks/trace.py:
//   app_nulle: trace request=<id> db-write node=<server @@hostname> host=<db_host> visit=<id>
//   app_nulle: trace request=<id> db-write failed host=<db_host> | db-write skipped
// <id> is the proxy's X-Request-Id when it is 32 hex characters, else "-" (client input is
// never logged as is).
// The client address stored is REMOTE_ADDR, which mod_remoteip takes from X-Real-IP only for
// requests from the inventory's proxies (apache/site.conf.j2).
// The DB settings come from /etc/app_nulle/db.php ($db_host, $db_name, $db_user, $db_pass, and
// optionally $db_port, $db_replica_host); the page answers 200 even when they are missing.
// Expected table: visits(id BIGINT AUTO_INCREMENT PRIMARY KEY, served_by VARCHAR(255),
// client VARCHAR(64), at TIMESTAMP(3) DEFAULT CURRENT_TIMESTAMP(3)).

const SERVED_BY = 'web2.tp5.b2 10.5.1.12';
const DB_CONFIG = '/etc/app_nulle/db.php';

function one_line(string $text): string
{
    return trim(preg_replace('/\s+/', ' ', $text));
}

// Log the details of a failure for the operator; the client gets a generic reason.
function logged(string $what, Throwable $e): string
{
    error_log('app_nulle: ' . $what . ': ' . one_line($e->getMessage()));
    return 'unavailable (' . $what . ', see the web server error log)';
}

// The proxy's request id (32 hex characters), or "-": never the raw header.
function request_id(): string
{
    $id = $_SERVER['HTTP_X_REQUEST_ID'] ?? '';
    return (is_string($id) && preg_match('/^[0-9a-f]{32}$/', $id) === 1) ? $id : '-';
}

// One trace line: which database node this request wrote to (words from the inventory and
// from the server, no client input).
function trace_write(string $outcome): void
{
    error_log('app_nulle: trace request=' . request_id() . ' db-write ' . one_line($outcome));
}

function db_connect(string $host, int $port, string $user, string $pass, string $name): mysqli
{
    mysqli_report(MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT);
    $link = mysqli_init();
    $link->options(MYSQLI_OPT_CONNECT_TIMEOUT, 1);
    $link->options(MYSQLI_OPT_READ_TIMEOUT, 2);
    @$link->real_connect($host, $user, $pass, $name, $port);
    return $link;
}

header('X-Served-By: ' . SERVED_BY);
header('Content-Type: text/plain; charset=utf-8');
header('Cache-Control: no-store');

$session = 'unavailable';
ini_set('session.use_strict_mode', '1');
ini_set('session.cookie_httponly', '1');
ini_set('session.cookie_samesite', 'Lax');
session_name('app_nulle_sid');
if (@session_start()) {
    $_SESSION['hits'] = ($_SESSION['hits'] ?? 0) + 1;
    $session = session_id() . ' hits=' . $_SESSION['hits'];
    session_write_close();
}

$client = $_SERVER['REMOTE_ADDR'] ?? '-';
$db = null;
$replica = null;
if (!file_exists(DB_CONFIG)) {
    $db = 'unavailable (no ' . DB_CONFIG . ')';
} elseif (!is_readable(DB_CONFIG)) {
    $db = 'unavailable (cannot read ' . DB_CONFIG . ')';
} else {
    try {
        include DB_CONFIG;
    } catch (Throwable $e) {
        $db = logged('error in ' . DB_CONFIG, $e);
    }
    foreach (['db_host', 'db_name', 'db_user', 'db_pass'] as $setting) {
        if ($db === null && !isset($$setting)) {
            $db = 'unavailable (' . DB_CONFIG . ' does not set $' . $setting . ')';
        }
    }
}
if ($db !== null) {
    trace_write('skipped');
} else {
    $port = (int) ($db_port ?? 3306);
    try {
        $link = db_connect($db_host, $port, $db_user, $db_pass, $db_name);
        $served_by = SERVED_BY;
        $insert = $link->prepare('INSERT INTO visits (served_by, client) VALUES (?, ?)');
        $insert->bind_param('ss', $served_by, $client);
        $insert->execute();
        $id = $link->insert_id;
        [$count, $node] = $link->query('SELECT COUNT(*), @@hostname FROM visits')->fetch_row();
        $db = "visits=$count id=$id host=$db_host";
        $link->close();
        trace_write("node=$node host=$db_host visit=$id");
    } catch (Throwable $e) {
        $db = logged('database error', $e);
        trace_write("failed host=$db_host");
    }
    if (!empty($db_replica_host)) {
        try {
            $link = db_connect($db_replica_host, $port, $db_user, $db_pass, $db_name);
            $count = $link->query('SELECT COUNT(*) FROM visits')->fetch_row()[0];
            $replica = "visits=$count host=$db_replica_host";
            $link->close();
        } catch (Throwable $e) {
            $replica = logged('replica database error', $e);
        }
    }
}

// --- Output: the same "key: value" facts as plain text (curl, probes, tests parse it), or
// as a small HTML page when the client prefers text/html over text/plain (a browser sends
// "text/html,...;q=0.9,*/*;q=0.8", curl "*/*": a tie keeps plain text). Every value is
// escaped in HTML; no external resource, no script.

// The q of the client's best Accept range for $type ("text/html"): 1.0 without Accept.
function accept_q(string $accept, string $type): float
{
    if (trim($accept) === '') {
        return 1.0;
    }
    [$major] = explode('/', $type);
    $best = [-1, 0.0];  // [specificity, q]: the most specific matching range wins
    foreach (explode(',', strtolower($accept)) as $range) {
        $parts = array_map('trim', explode(';', $range));
        $rank = array_search($parts[0], ['*/*', "$major/*", $type], true);
        if ($rank === false || $rank < $best[0]) {
            continue;
        }
        $q = 1.0;
        foreach (array_slice($parts, 1) as $param) {
            if (preg_match('/^q=([01](?:\.\d{0,3})?)$/', $param, $m) === 1) {
                $q = (float) $m[1];
            }
        }
        $best = [$rank, $q];
    }
    return $best[1];
}

function wants_html(): bool
{
    $accept = $_SERVER['HTTP_ACCEPT'] ?? '';
    $accept = is_string($accept) ? $accept : '';
    return accept_q($accept, 'text/html') > accept_q($accept, 'text/plain');
}

function html_page(array $facts): string
{
    $e = fn (string $text): string => htmlspecialchars($text, ENT_QUOTES | ENT_SUBSTITUTE, 'UTF-8');
    $rows = '';
    foreach ($facts as $key => $value) {
        $rows .= '<dt>' . $e($key) . '</dt><dd id="' . $e($key) . '">' . $e($value) . "</dd>\n";
    }
    $title = $e($facts['app']) . ' on ' . $e(explode(' ', $facts['served-by'])[0]);
    return "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        . "<title>$title</title>\n<style>body{font-family:sans-serif;margin:2em}"
        . "dl{display:grid;grid-template-columns:max-content auto;gap:.4em 1.2em}"
        . "dt{font-weight:bold}dd{margin:0;font-family:monospace}</style>\n</head>\n<body>\n"
        . "<h1>$title</h1>\n<dl>\n$rows</dl>\n</body>\n</html>\n";
}

$facts = ['app' => 'app_nulle', 'served-by' => SERVED_BY, 'session' => $session, 'db' => $db];
if ($replica !== null) {
    $facts['db-replica'] = $replica;
}
header('Vary: Accept');
if (wants_html()) {
    header('Content-Type: text/html; charset=utf-8');
    header("Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'");
    echo html_page($facts);
} else {
    foreach ($facts as $key => $value) {
        echo "$key: $value\n";
    }
}
