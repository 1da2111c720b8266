<?php
// Managed by tp5ha (templates/php/db.php.j2): changes here are overwritten.
// The database settings of /var/www/app_nulle/index.php on web2.tp5.b2: the primary (writes), and
// the first replica for the page's replica read. Mode 0640 root:www-data: it holds a password.
$db_host = '10.5.1.211';
$db_port = 3306;
$db_name = 'app_nulle';
$db_user = 'app_nulle';
$db_pass = 'golden-stand-in-password';
$db_replica_host = '10.5.1.212';
