<?php
// Managed by tp5ha (templates/php/index.php.j2): changes here are overwritten.
// Plain-text page, one "key: value" line each, so that probes can parse it:
//   served-by: <fqdn> <address>     (also in the X-Served-By header)
//   session: <id> hits=<n> | session: unavailable (<reason>)
//   db: visits=<n> id=<id> host=<address written to> | db: unavailable (<reason>)
//   db-replica: visits=<n> host=<replica address> | db-replica: unavailable (<reason>)
// The node written to is the one of $db_nodes that accepts writes (@@read_only = 0), found by
// asking them (1 s connect timeout each) and remembered for DB_PRIMARY_TTL seconds in
// DB_PRIMARY_CACHE; a refused write (1290) or a node that does not answer makes the page ask
// again at once. A connection lost during the write (2006/2013) is not retried: whether it
// committed is unknown ("write outcome unknown"), and the next request asks again. A node
// that did not answer when asked which one is the primary (connect, greeting or that
// question timed out) is skipped for DB_SUSPECT_TTL seconds by every request of this web
// server, so that they do not each wait for a dead or frozen node while another one becomes
// the primary. A write that timed out does not make its node suspect: a primary whose commits
// wait for a replica's acknowledgement answers, and skipping it would only fail its writes
// sooner.
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
// optionally $db_port, $db_nodes, $db_replica_host); the page answers 200 even when they are
// missing.
// Expected table: visits(id BIGINT AUTO_INCREMENT PRIMARY KEY, served_by VARCHAR(255),
// client VARCHAR(64), at TIMESTAMP(3) DEFAULT CURRENT_TIMESTAMP(3)).
// Sessions, where the inventory's session_store says (here: db): "db" keeps
// them in the table sessions of the database (DbSessionHandler below), so that every web server
// reads the same session; "files" keeps PHP's own files on each web server's disk (a session
// then lives on one server: use it with the proxies' affinity). Without readable database
// settings the page keeps PHP's files (the db tier is not deployed yet). "hits" is shown only
// once the session is saved.

const SERVED_BY = 'web2.tp5.b2 10.5.1.12';
const DB_CONFIG = '/etc/app_nulle/db.php';
const DB_PRIMARY_CACHE = '/tmp/app_nulle-web2-db-primary';
const DB_PRIMARY_TTL = 30;
const DB_READ_TIMEOUT = 2;
const DB_SUSPECT_TTL = 2.0;
const DB_NO_ANSWER = [2002, 2003, 2006, 2013];  // the node did not answer (not a refusal)
const SESSION_STORE = 'db';

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

function db_connect(string $host, int $port, string $user, string $pass, string $name,
                    int $read_timeout = DB_READ_TIMEOUT): mysqli
{
    mysqli_report(MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT);
    $link = mysqli_init();
    $link->options(MYSQLI_OPT_CONNECT_TIMEOUT, 1);
    $link->options(MYSQLI_OPT_READ_TIMEOUT, $read_timeout);
    @$link->real_connect($host, $user, $pass, $name, $port);
    return $link;
}

// --- finding the primary: the one db node that accepts writes --------------------------------

// The nodes to ask: [address, port] pairs ($db_nodes, else the single $db_host).
function db_nodes(?array $nodes, string $host, int $port): array
{
    return $nodes ?: [[$host, $port]];
}

// The remembered primary [address, port], or null (none, or older than DB_PRIMARY_TTL).
function db_cached_primary(): ?array
{
    $text = @file_get_contents(DB_PRIMARY_CACHE);
    if ($text === false || time() - (int) @filemtime(DB_PRIMARY_CACHE) > DB_PRIMARY_TTL) {
        return null;
    }
    $parts = explode(' ', trim($text));
    return count($parts) === 2 ? [$parts[0], (int) $parts[1]] : null;
}

// Remember the primary (atomically: write then rename), or forget it (null).
function db_remember_primary(?array $node): void
{
    if ($node === null) {
        @unlink(DB_PRIMARY_CACHE);
        return;
    }
    $tmp = DB_PRIMARY_CACHE . '.' . getmypid();
    if (@file_put_contents($tmp, $node[0] . ' ' . $node[1]) !== false) {
        @rename($tmp, DB_PRIMARY_CACHE);
    }
}

// Where the time a node last did not answer is kept (one file per node and web server).
function db_suspect_path(string $address, int $port): string
{
    return DB_PRIMARY_CACHE . '-suspect-' . md5($address . ':' . $port);
}

// After an error: a node that did not answer is suspect from now on; one that answered is not.
function db_note_error(string $address, int $port, Throwable $e): void
{
    if ($e instanceof mysqli_sql_exception && in_array($e->getCode(), DB_NO_ANSWER, true)) {
        @file_put_contents(db_suspect_path($address, $port), (string) microtime(true));
    }
}

// True while the node is suspect (it did not answer in the last DB_SUSPECT_TTL s): skip it.
// Once that time is over it is marked again and false is returned: this request asks it,
// the others keep skipping it meanwhile.
function db_skip_suspect(string $address, int $port): bool
{
    $path = db_suspect_path($address, $port);
    $at = @file_get_contents($path);
    if ($at === false || !is_numeric($at)) {
        return false;
    }
    if (microtime(true) - (float) $at < DB_SUSPECT_TTL) {
        return true;
    }
    @file_put_contents($path, (string) microtime(true));
    return false;
}

// Ask every node (a suspect one only once its time is over); return [link, address] of the
// one with @@read_only = 0, remembered.
function db_discover(array $nodes, string $user, string $pass, string $name,
                     int $read_timeout = DB_READ_TIMEOUT): array
{
    $errors = [];
    foreach ($nodes as [$address, $port]) {
        if (db_skip_suspect($address, (int) $port)) {
            $errors[] = "$address:$port: skipped (did not answer in the last " . DB_SUSPECT_TTL
                . ' s)';
            continue;
        }
        try {
            $link = db_connect($address, (int) $port, $user, $pass, $name, $read_timeout);
            @unlink(db_suspect_path($address, (int) $port));  // it answers
            if ((int) $link->query('SELECT @@read_only')->fetch_row()[0] === 0) {
                db_remember_primary([$address, (int) $port]);
                return [$link, $address];
            }
            $link->close();
            $errors[] = "$address:$port read-only";
        } catch (Throwable $e) {
            db_note_error($address, (int) $port, $e);
            $errors[] = "$address:$port: " . one_line($e->getMessage());
        }
    }
    db_remember_primary(null);
    throw new RuntimeException('no writable database node: ' . implode('; ', $errors));
}

// A link to the primary: the remembered one when it answers, else ask every node.
function db_primary_link(array $nodes, string $user, string $pass, string $name,
                         int $read_timeout = DB_READ_TIMEOUT): array
{
    $cached = db_cached_primary();
    if ($cached !== null) {
        try {
            return [db_connect($cached[0], $cached[1], $user, $pass, $name, $read_timeout),
                    $cached[0]];
        } catch (Throwable $e) {
            db_remember_primary(null);
            db_note_error($cached[0], $cached[1], $e);
        }
    }
    return db_discover($nodes, $user, $pass, $name, $read_timeout);
}

// Insert one visit on the primary: [id, visits, address written to]. A refused write (1290:
// the node is read-only now) is certainly not applied: ask every node again and retry once.
// A connection lost during the write (2006, 2013) is not retried (it may have committed).
function db_write_visit(array $nodes, string $user, string $pass, string $name,
                        string $served_by, string $client): array
{
    [$link, $address] = db_primary_link($nodes, $user, $pass, $name);
    for ($attempt = 1; ; $attempt++) {
        try {
            $insert = $link->prepare('INSERT INTO visits (served_by, client) VALUES (?, ?)');
            $insert->bind_param('ss', $served_by, $client);
            $insert->execute();
            $id = $link->insert_id;
            // @@hostname: the server that really took the write (for the request trace).
            [$count, $node] = $link->query('SELECT COUNT(*), @@hostname FROM visits')
                ->fetch_row();
            $link->close();
            return [$id, $count, $address, $node];
        } catch (mysqli_sql_exception $e) {
            db_remember_primary(null);
            if ($e->getCode() === 2006 || $e->getCode() === 2013) {
                throw new RuntimeException('write outcome unknown: ' . $e->getMessage(), 0, $e);
            }
            if ($e->getCode() !== 1290 || $attempt > 1) {
                throw $e;
            }
            [$link, $address] = db_discover($nodes, $user, $pass, $name);
        }
    }
}

// A node to read from that is not the one written to (the first other one), or null.
function db_replica_node(array $nodes, string $written): ?array
{
    foreach ($nodes as [$address, $port]) {
        if ($address !== $written) {
            return [$address, (int) $port];
        }
    }
    return null;
}

// --- sessions in the database (session_store: db) ---------------------------------------------
// One row per session in the table sessions (id, data, last_access) of the primary, the node
// found by the discovery above (the replica may lag: a session is read where it is written).
// Locking as PHP's files handler does it, one request of a session at a time from read to
// write: a named lock per session id (GET_LOCK), held by the request's own connection until
// it closes. No transaction stays open over the request: the only commit is the write, which
// waits for the replica's semi-sync acknowledgement like every write (a session shown to the
// client is on two nodes). The lock is not replicated and costs no commit; the server releases
// it when the connection ends, and drops a connection idle SESSION_IDLE_TIMEOUT seconds (a
// crashed web server's lock lasts no longer than that). A request waits SESSION_LOCK_WAIT
// seconds at most for the lock, then its session is unavailable.
// Expiry: a row older than session.gc_maxlifetime is no session (strict mode then issues a new
// id); the garbage collection (1 request in 100) deletes such rows. Unchanged data only
// refreshes last_access when it is SESSION_TOUCH seconds old (lazy_write): no commit otherwise.
// Strict mode: validateId accepts only an id with a live row, so a client cannot choose its id.
// Expected table: sessions(id VARCHAR(128) ascii_bin PRIMARY KEY, data MEDIUMBLOB,
// last_access TIMESTAMP, KEY (last_access)); the app account needs SELECT, INSERT, UPDATE,
// DELETE on it, GET_LOCK needs no privilege.

const SESSION_LOCK_WAIT = 3;
const SESSION_IDLE_TIMEOUT = 2;
const SESSION_TOUCH = 60;
const SESSION_ID = '/^[0-9a-zA-Z,-]{22,128}$/';

final class DbSessionHandler implements SessionHandlerInterface,
                                        SessionUpdateTimestampHandlerInterface
{
    private ?mysqli $link = null;
    private ?string $locked = null;  // the id whose lock this request holds
    private ?string $data = null;  // that session's data, null when it has no live row
    private bool $broken = false;  // an error happened: every later call fails

    public function __construct(private array $nodes, private string $user,
                                private string $pass, private string $name)
    {
    }

    public function open(string $path, string $name): bool
    {
        return true;  // connected on first use
    }

    public function validateId(string $id): bool
    {
        return preg_match(SESSION_ID, $id) === 1  // another form is no session of ours
            && $this->attempt('validate', fn () => $this->row($id) !== null);
    }

    public function read(string $id): string|false
    {
        return $this->attempt('read', fn () => $this->row($id) ?? '');
    }

    public function write(string $id, string $data): bool
    {
        return $this->attempt('write', function () use ($id, $data): bool {
            $this->row($id);
            $this->run('INSERT INTO sessions (id, data, last_access) VALUES (?, ?, NOW()) '
                . 'ON DUPLICATE KEY UPDATE data = VALUES(data), last_access = NOW()',
                'ss', $id, $data);
            $this->data = $data;
            return true;
        });
    }

    public function updateTimestamp(string $id, string $data): bool
    {
        return $this->attempt('touch', function () use ($id): bool {
            $this->row($id);
            $this->run('UPDATE sessions SET last_access = NOW() WHERE id = ? '
                . 'AND last_access < NOW() - INTERVAL ? SECOND', 'si', $id, SESSION_TOUCH);
            return true;
        });
    }

    public function destroy(string $id): bool
    {
        return $this->attempt('destroy', function () use ($id): bool {
            $this->row($id);
            $this->run('DELETE FROM sessions WHERE id = ?', 's', $id);
            $this->data = null;
            return true;
        });
    }

    public function gc(int $max_lifetime): int|false
    {
        return $this->attempt('gc', fn () => $this->run(
            'DELETE FROM sessions WHERE last_access < NOW() - INTERVAL ? SECOND',
            'i', $max_lifetime));
    }

    public function close(): bool
    {
        $this->link?->close();  // ends the connection: the server releases the lock
        $this->link = $this->locked = $this->data = null;
        return true;
    }

    // Run one step; an error is logged, and this and every later step fail.
    private function attempt(string $what, Closure $step): mixed
    {
        if (!$this->broken) {
            try {
                return $step();
            } catch (Throwable $e) {
                if ($e instanceof mysqli_sql_exception && $e->getCode() === 1290) {
                    db_remember_primary(null);  // read-only now: ask every node next time
                }
                logged("session $what", $e);
                $this->broken = true;
                $this->close();
            }
        }
        return false;
    }

    // The live row of $id (null: none), read with its lock held (taken once per id).
    private function row(string $id): ?string
    {
        if ($this->locked !== $id) {
            if (preg_match(SESSION_ID, $id) !== 1) {
                throw new RuntimeException('malformed session id');
            }
            $this->lock('session:' . sha1('app_nulle:' . $id));
            $lifetime = (int) ini_get('session.gc_maxlifetime');
            $select = $this->link->prepare('SELECT data FROM sessions WHERE id = ? '
                . 'AND last_access >= NOW() - INTERVAL ? SECOND');
            $select->bind_param('si', $id, $lifetime);
            $select->execute();
            $found = $select->get_result()->fetch_row();
            [$this->locked, $this->data] = [$id, $found === null ? null : (string) $found[0]];
        }
        return $this->data;
    }

    // Connect to the primary and take the named lock there. A node that turned read-only
    // since it was remembered (a switchover) is forgotten and every node asked, once.
    private function lock(string $name): void
    {
        $this->close();
        for ($attempt = 1; ; $attempt++) {
            [$this->link] = db_primary_link($this->nodes, $this->user, $this->pass, $this->name,
                                            SESSION_LOCK_WAIT + DB_READ_TIMEOUT);
            $this->link->query('SET SESSION wait_timeout = ' . SESSION_IDLE_TIMEOUT);
            $get = $this->link->prepare('SELECT GET_LOCK(?, ?), @@read_only');
            $wait = SESSION_LOCK_WAIT;
            $get->bind_param('si', $name, $wait);
            $get->execute();
            [$got, $read_only] = $get->get_result()->fetch_row();
            if ((int) $read_only === 0 && (int) $got === 1) {
                return;
            }
            $this->close();
            if ((int) $read_only === 0 || $attempt > 1) {
                throw new RuntimeException((int) $read_only === 0
                    ? 'session lock not obtained within ' . SESSION_LOCK_WAIT . ' s'
                    : 'no writable database node for the session');
            }
            db_remember_primary(null);
        }
    }

    private function run(string $sql, string $types, mixed ...$values): int
    {
        $statement = $this->link->prepare($sql);
        $statement->bind_param($types, ...$values);
        $statement->execute();
        return $statement->affected_rows;
    }
}

// Start the session (in the database when $handler is given), count this request, save it;
// the session line, or why there is none.
function session_line(?SessionHandlerInterface $handler): string
{
    ini_set('session.use_strict_mode', '1');
    ini_set('session.cookie_httponly', '1');
    ini_set('session.cookie_samesite', 'Lax');
    session_name('app_nulle_sid');
    if ($handler !== null) {
        ini_set('session.gc_probability', '1');  // Debian's cron cleans files only
        ini_set('session.gc_divisor', '100');
        session_set_save_handler($handler, false);
    }
    if (!@session_start()) {
        return 'unavailable (session store error, see the web server error log)';
    }
    $_SESSION['hits'] = ($_SESSION['hits'] ?? 0) + 1;
    $line = session_id() . ' hits=' . $_SESSION['hits'];
    return @session_write_close() ? $line
        : 'unavailable (session not saved, see the web server error log)';
}

header('X-Served-By: ' . SERVED_BY);
header('Content-Type: text/plain; charset=utf-8');
header('Cache-Control: no-store');

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
$port = (int) ($db_port ?? 3306);
$nodes = $db === null ? db_nodes($db_nodes ?? null, $db_host, $port) : [];
$session = session_line(SESSION_STORE === 'db' && $db === null
    ? new DbSessionHandler($nodes, $db_user, $db_pass, $db_name) : null);
if ($db !== null) {
    trace_write('skipped');
} else {
    $written = null;
    try {
        [$id, $count, $written, $node] = db_write_visit($nodes, $db_user, $db_pass, $db_name,
                                                        SERVED_BY, $client);
        $db = "visits=$count id=$id host=$written";
        trace_write("node=$node host=$written visit=$id");
    } catch (Throwable $e) {
        $unknown = str_starts_with($e->getMessage(), 'write outcome unknown');
        $db = logged($unknown ? 'database error, write outcome unknown' : 'database error', $e);
        trace_write('failed host=' . ($written ?? $db_host));
    }
    $read = isset($db_nodes) ? db_replica_node($nodes, $written ?? $db_host)
        : (empty($db_replica_host) ? null : [$db_replica_host, $port]);
    if ($read !== null) {
        try {
            $link = db_connect($read[0], $read[1], $db_user, $db_pass, $db_name);
            $count = $link->query('SELECT COUNT(*) FROM visits')->fetch_row()[0];
            $replica = "visits=$count host=$read[0]";
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
