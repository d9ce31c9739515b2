<?php
// mail.php - php-fpm's mail() through /usr/sbin/sendmail (relayshim), for test_containers.py.
$ok = mail($_GET['to'], 'fpm ' . $_GET['marker'], "sent by php-fpm " . $_GET['marker'] . "\n",
           "From: app@example.com");
echo $ok ? "sent\n" : "mail() failed\n";
