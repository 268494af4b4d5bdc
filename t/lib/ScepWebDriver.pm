package ScepWebDriver;
# A small W3C WebDriver client for the browser tests (t/40-browser.t):
# headless Chromium through chromedriver, with core Perl only (HTTP::Tiny,
# JSON::PP).
#
#   my $wd = ScepWebDriver->new(dir => $tmp);   # chromedriver + a session
#   $wd->get($url);
#   my $el = $wd->find('table#pending tr');     # element id or undef
#   my $b = $wd->xfind('//tr[td="x"]//input');  # the same by XPath
#   $wd->click($el);
#   $wd->text;  $wd->source;  $wd->title;  $wd->url;
#   $wd->screenshot('t/artifacts/browser-01-x.png');
#   $wd->quit;                                  # also on every other path
#
# chromedriver runs in a process group of its own (setsid), so quit() ends
# it and the Chromium it started by that group's id; an END block and the
# object's DESTROY do the same when a test dies half-way.  Every HTTP call
# to chromedriver is bounded (HTTP::Tiny timeout), and so are the session's
# page-load and script timeouts.
use strict;
use warnings;

use Carp qw(croak);
use File::Spec ();
use File::Temp ();
use HTTP::Tiny ();
use IO::Socket::INET ();
use JSON::PP ();
use MIME::Base64 qw(decode_base64 encode_base64);
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

# the W3C element reference key
use constant ELEMENT => 'element-6066-11e4-a52e-4f735466cecf';

my %LIVE;      # refaddr => object, for the END block
my $JSON = JSON::PP->new->utf8->canonical;

sub _free_port {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, Proto => 'tcp', ReuseAddr => 1)
        or croak "cannot find a free loopback port: $!";
    my $port = $s->sockport;
    close $s;
    return $port;
}

# new(dir => DIR, chromedriver => PATH, chromium => PATH, timeout => SECS,
#     window => '1200,900', args => [extra Chromium arguments])
sub new {
    my ($class, %o) = @_;
    my $self = bless {
        chromedriver => $o{chromedriver} // '/usr/bin/chromedriver',
        chromium     => $o{chromium} // '/usr/bin/chromium',
        timeout      => $o{timeout} // 30,
        window       => $o{window} // '1200,900',
        owner        => $$,
    }, $class;
    $self->{dir} = $o{dir} // File::Temp::tempdir('scep-wd-XXXXXX',
                                                   TMPDIR => 1, CLEANUP => 1);
    $self->{profile} = File::Temp::tempdir('profile-XXXXXX',
                                           DIR => $self->{dir}, CLEANUP => 1);
    $self->{log} = File::Spec->catfile($self->{dir}, 'chromedriver.log');
    # no proxy from the environment: chromedriver is on the loopback
    $self->{http} = HTTP::Tiny->new(timeout => $self->{timeout} + 15,
                                    keep_alive => 0, agent => 'mod_scep-wd/1',
                                    proxy => undef, http_proxy => undef);
    $LIVE{"$self"} = $self;

    my $err;
    for my $attempt (1 .. 3) {    # a port taken in between: try another
        $err = undef;
        eval { $self->_start_driver; 1 } and last;
        $err = $@;
        $self->_kill_driver;
    }
    croak $err if $err;
    eval { $self->_new_session(@{ $o{args} || [] }); 1 } or do {
        my $e = $@;
        $self->quit;
        croak $e;
    };
    return $self;
}

sub _start_driver {
    my ($self) = @_;
    my $port = _free_port();
    my $pid = fork;
    croak "fork: $!" unless defined $pid;
    if ($pid == 0) {
        POSIX::setsid();
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $self->{log};
        open STDERR, '>&', \*STDOUT;
        { no warnings 'exec';
          exec $self->{chromedriver}, "--port=$port",
               '--allowed-ips=127.0.0.1'; }
        POSIX::_exit(127);
    }
    $self->{pid} = $pid;
    $self->{base} = "http://127.0.0.1:$port";
    my $deadline = time + 15;
    while (time < $deadline) {
        if (waitpid($pid, WNOHANG) == $pid) {
            delete $self->{pid};
            croak "chromedriver exited at start ($?): " . $self->driver_log;
        }
        my $r = $self->{http}->get("$self->{base}/status");
        if ($r->{success}) {
            my $v = eval { $JSON->decode($r->{content}) };
            return 1 if $v && $v->{value} && $v->{value}{ready};
        }
        sleep 0.1;
    }
    croak "chromedriver not ready on $self->{base} within 15 s: "
        . $self->driver_log;
}

sub driver_log {
    my ($self) = @_;
    open my $fh, '<', $self->{log} or return '(no log)';
    local $/;
    my $s = <$fh> // '';
    return length $s > 4000 ? substr($s, -4000) : $s;
}

sub _new_session {
    my ($self, @extra) = @_;
    my @args = ('--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
                '--no-first-run', '--disable-background-networking',
                '--disable-component-update', '--disable-sync',
                '--disable-dev-shm-usage', '--no-proxy-server',
                "--user-data-dir=$self->{profile}",
                "--window-size=$self->{window}", @extra);
    my $ms = int($self->{timeout} * 1000);
    my $v = $self->_cmd(POST => '/session', {
        capabilities => { alwaysMatch => {
            browserName => 'chrome',
            pageLoadStrategy => 'normal',
            timeouts => { pageLoad => $ms, script => $ms, implicit => 0 },
            'goog:chromeOptions' => {
                binary => $self->{chromium},
                args   => \@args,
            },
        } },
    });
    $self->{session} = $v->{sessionId}
        or croak 'WebDriver: no sessionId in the new session reply';
    $self->{capabilities} = $v->{capabilities};
    return $self;
}

# _cmd(METHOD, PATH, BODY): the reply's "value"; croaks on a WebDriver error
sub _cmd {
    my ($self, $method, $path, $body) = @_;
    croak 'WebDriver: chromedriver is not running' unless $self->{base};
    my %opt = (headers => { 'Content-Type' => 'application/json; charset=utf-8' });
    $opt{content} = $JSON->encode($body // {}) if $method eq 'POST';
    my $r = $self->{http}->request($method, $self->{base} . $path, \%opt);
    my $v = eval { $JSON->decode($r->{content} // '') };
    if (!$r->{success} || !$v) {
        my $e = $v && ref $v->{value} eq 'HASH'
              ? "$v->{value}{error}: $v->{value}{message}"
              : "HTTP $r->{status} $r->{reason}: "
                . substr($r->{content} // '', 0, 500);
        $e =~ s/\n\s*Stacktrace:.*//s;
        croak "WebDriver $method $path: $e";
    }
    return $v->{value};
}

sub _s { my ($self) = @_; croak 'WebDriver: no session' unless $self->{session};
         return "/session/$self->{session}" }

# ---- navigation and page -----------------------------------------------------

sub get    { my ($self, $url) = @_; $self->_cmd(POST => $self->_s . '/url', { url => $url }); $self }
sub url    { $_[0]->_cmd(GET => $_[0]->_s . '/url') }
sub title  { $_[0]->_cmd(GET => $_[0]->_s . '/title') }
sub source { $_[0]->_cmd(GET => $_[0]->_s . '/source') }
sub back   { $_[0]->_cmd(POST => $_[0]->_s . '/back', {}) }

# the visible text of the page (or of ELEMENT)
sub text {
    my ($self, $el) = @_;
    $el //= $self->find('body') // return '';
    return $self->_cmd(GET => $self->_s . "/element/$el/text");
}

sub script {
    my ($self, $js, @args) = @_;
    return $self->_cmd(POST => $self->_s . '/execute/sync',
                       { script => $js, args => \@args });
}

# Chrome DevTools command through chromedriver (goog/cdp/execute)
sub cdp {
    my ($self, $cmd, $params) = @_;
    return $self->_cmd(POST => $self->_s . '/goog/cdp/execute',
                       { cmd => $cmd, params => $params // {} });
}

# basic_auth(USER, PASS): an Authorization header on every request of the
# session (for when Chromium will not take credentials in the URL)
sub basic_auth {
    my ($self, $user, $pass) = @_;
    $self->cdp('Network.enable', {});
    $self->cdp('Network.setExtraHTTPHeaders', { headers => {
        Authorization => 'Basic ' . encode_base64("$user:$pass", '') } });
    return $self;
}

# ---- elements ----------------------------------------------------------------

sub _elid { my ($v) = @_; return ref $v eq 'HASH' ? $v->{+ELEMENT} : undef }

# find(CSS [, FROM]): the first match (an element id) or undef
sub find {
    my ($self, $css, $from) = @_;
    my @all = $self->find_all($css, $from);
    return $all[0];
}

sub find_all {
    my ($self, $css, $from) = @_;
    return $self->_find_all('css selector', $css, $from);
}

# xfind(XPATH [, FROM]), xfind_all(XPATH [, FROM]): the same by XPath
sub xfind {
    my ($self, $xpath, $from) = @_;
    my @all = $self->_find_all('xpath', $xpath, $from);
    return $all[0];
}

sub xfind_all {
    my ($self, $xpath, $from) = @_;
    return $self->_find_all('xpath', $xpath, $from);
}

sub _find_all {
    my ($self, $using, $what, $from) = @_;
    my $path = $self->_s . ($from ? "/element/$from/elements" : '/elements');
    my $v = $self->_cmd(POST => $path, { using => $using, value => $what });
    return map { _elid($_) } @{ $v || [] };
}

sub click {
    my ($self, $el) = @_;
    $self->_cmd(POST => $self->_s . "/element/$el/click", {});
    return $self;
}

sub attr {
    my ($self, $el, $name) = @_;
    return $self->_cmd(GET => $self->_s . "/element/$el/attribute/$name");
}

# is ELEMENT gone from the document (a navigation replaced the page)?
sub stale {
    my ($self, $el) = @_;
    my $ok = eval { $self->_cmd(GET => $self->_s . "/element/$el/name"); 1 };
    return !$ok && $@ =~ /stale element reference|no such element/;
}

# wait_until(CODE, SECS): CODE's true value, or undef after SECS
sub wait_until {
    my ($self, $code, $secs) = @_;
    my $deadline = time + ($secs // 10);
    while (1) {
        my $v = eval { $code->() };
        return $v if $v;
        return undef if time > $deadline;
        sleep 0.1;
    }
}

# the page's document.readyState is "complete"
sub wait_loaded {
    my ($self, $secs) = @_;
    return $self->wait_until(sub {
        $self->script('return document.readyState') eq 'complete' }, $secs);
}

# ---- screenshots -------------------------------------------------------------

# screenshot(FILE): the viewport as PNG; returns the number of bytes
sub screenshot {
    my ($self, $file) = @_;
    my $b64 = $self->_cmd(GET => $self->_s . '/screenshot');
    my $png = decode_base64($b64 // '');
    open my $fh, '>', $file or croak "cannot write $file: $!";
    binmode $fh;
    print $fh $png;
    close $fh or croak "cannot write $file: $!";
    return length $png;
}

# ---- the end -----------------------------------------------------------------

sub _kill_driver {
    my ($self) = @_;
    my $pid = delete $self->{pid} or return;
    # the group setsid() made: chromedriver and the Chromium it started
    kill 'TERM', -$pid;
    for (1 .. 30) {
        return if waitpid($pid, WNOHANG) == $pid;
        sleep 0.1;
    }
    kill 'KILL', -$pid;
    waitpid($pid, 0);
}

sub quit {
    my ($self) = @_;
    return unless $self->{owner} && $self->{owner} == $$;
    if ($self->{session} && $self->{pid}) {
        local $self->{http} = HTTP::Tiny->new(timeout => 10, keep_alive => 0,
                                              proxy => undef,
                                              http_proxy => undef);
        eval { $self->_cmd(DELETE => $self->_s) };
    }
    delete $self->{session};
    $self->_kill_driver;
    delete $LIVE{"$self"};
    return 1;
}

sub DESTROY {
    my ($self) = @_;
    local ($@, $!, $?);
    $self->quit;
}

END {
    local ($@, $!, $?);
    $_->quit for values %LIVE;
}

1;
