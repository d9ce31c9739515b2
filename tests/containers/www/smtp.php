<?php
// smtp.php TO MARKER - SMTP to localhost:25 with fsockopen(), as PHPMailer's SMTP mode does;
// the shim (LD_PRELOAD) answers the connection. For test_containers.py.
[$to, $marker] = [$argv[1], $argv[2]];
$f = fsockopen('localhost', 25, $errno, $errstr, 10);
if (!$f) { fwrite(STDERR, "connect: $errstr\n"); exit(1); }
function reply($f) {
    $all = '';
    while (($line = fgets($f)) !== false) {
        $all .= $line;
        if (strlen($line) < 4 || $line[3] === ' ') break;
    }
    return $all;
}
function step($f, $send, $want) {
    if ($send !== null) fwrite($f, $send . "\r\n");
    $r = reply($f);
    if (substr($r, 0, 3) !== $want) { fwrite(STDERR, "$send -> $r"); exit(1); }
}
step($f, null, '220');
step($f, 'EHLO app.example.com', '250');
step($f, 'MAIL FROM:<app@example.com>', '250');
step($f, "RCPT TO:<$to>", '250');
step($f, 'DATA', '354');
step($f, "Subject: smtp $marker\r\n\r\nsent over SMTP to localhost:25 $marker\r\n.", '250');
step($f, 'QUIT', '221');
echo "sent\n";
