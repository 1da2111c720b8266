<?php
// Managed by tp5ha (templates/php/db.php.j2): changes here are overwritten.
// The database settings of /var/www/app_nulle/index.php on web2.tp5.b2. Mode 0640 root:www-data: it
// holds a password. The page writes to whichever of $db_nodes accepts writes (@@read_only = 0),
// found by asking them: a switchover or failover needs no change here. $db_host is the
// inventory's initial primary (tried first), $db_replica_host its first replica.
$db_host = '10.5.1.211';
$db_port = 3306;
$db_name = 'app_nulle';
$db_user = 'app_nulle';
$db_pass = 'golden-stand-in-password';
$db_nodes = [
    ['10.5.1.211', 3306],
    ['10.5.1.212', 3306],
];
$db_replica_host = '10.5.1.212';
