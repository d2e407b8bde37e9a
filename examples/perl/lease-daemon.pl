#!/usr/bin/env perl
# A tenure/1 daemon in Perl, written from docs/protocol alone (no tenure code): it takes its
# family's lease, renews it every heartbeat, and retires by itself -- superseded, lease lost or
# expired, root removed or replaced, SIGTERM/SIGINT. Core Perl only (Fcntl flock, JSON::PP).
#
#   TENURE_ROOT=... TENURE_FAMILY=... TENURE_VERSION=... perl lease-daemon.pl
#
# It takes a lease only when it is absent, released, or held by a dead holder; it never
# expires a live holder itself (a conservative subset of lease.md#acquire). Exit 0 after a
# retirement, 1 when the lease is held or unreadable, 2 on a bad root or configuration.
# `--ignore-superseded` makes it break the protocol on purpose (the kit must catch that).
use strict;
use warnings;
use Fcntl qw(:DEFAULT :flock :mode);
use IO::Handle;
use JSON::PP;
use POSIX qw(sysconf _SC_CLK_TCK);
use Time::HiRes qw(time sleep);

my $ignore_superseded = grep { $_ eq '--ignore-superseded' } @ARGV;
my $root    = $ENV{TENURE_ROOT}    or die "TENURE_ROOT is not set\n";
my $family  = $ENV{TENURE_FAMILY}  or die "TENURE_FAMILY is not set\n";
my $version = $ENV{TENURE_VERSION} // '0.1';
my $ttl     = $ENV{TENURE_LEASE_TTL} || 15;
my $beat    = $ENV{TENURE_HEARTBEAT} || $ttl / 3;
my $port    = $ENV{TENURE_PORT};
my @ports   = ($ENV{TENURE_PORTS} // '') =~ /^(\d+)-(\d+)$/;
my $json    = JSON::PP->new->canonical;

my $leases = "$root/leases";
my ($record, $lockfile, $floorfile) = map { "$leases/$family$_" } ('.json', '.lock', '.epoch');
mkdir $leases, 0700;

sub create_time {    # as psutil reports it: boot time + start ticks / clock ticks
    open my $st, '<', '/proc/self/stat' or die "no /proc: $!\n";
    my $line = <$st>;
    my @f = split ' ', substr($line, rindex($line, ')') + 2);
    open my $sys, '<', '/proc/stat' or die "no /proc/stat: $!\n";
    my ($btime) = map { /^btime (\d+)/ ? $1 : () } <$sys>;
    return $btime + $f[19] / sysconf(_SC_CLK_TCK);
}

sub read_file {      # O_NOFOLLOW|O_NONBLOCK, regular files only, bounded (root.md#files)
    my ($path, $max) = @_;
    sysopen(my $fh, $path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK) or return undef;
    return undef unless S_ISREG((stat $fh)[2]);
    sysread($fh, my $data, $max + 1) // return undef;
    return length($data) > $max ? undef : $data;
}

sub write_atomic {   # temp file O_EXCL 0600, fsync, rename, fsync the directory
    my ($path, $data) = @_;
    my $tmp = sprintf '%s.tmp.%d.%d', $path, $$, int(rand 1e9);
    sysopen(my $fh, $tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600) or die "$tmp: $!\n";
    print {$fh} $data or do { unlink $tmp; die "$tmp: $!\n" };
    $fh->flush; $fh->sync; close $fh;
    rename $tmp, $path or do { unlink $tmp; die "rename $path: $!\n" };
    (my $dir = $path) =~ s{/[^/]+$}{};
    if (sysopen(my $dh, $dir, O_RDONLY)) { $dh->sync; close $dh }
}

sub with_lock {      # every write is a read-modify-write under the family's lock
    my ($path, $body) = @_;
    sysopen(my $lk, $path, O_RDWR | O_CREAT | O_NOFOLLOW, 0600) or die "$path: $!\n";
    my $until = time + 2;
    until (flock $lk, LOCK_EX | LOCK_NB) { die "lock timeout\n" if time > $until; sleep 0.01 }
    my @result = $body->();
    close $lk;
    return wantarray ? @result : $result[0];
}

sub read_record {    # (undef) absent, ('unreadable') garbage, else the decoded hash
    return (undef) unless -e $record || -l $record;
    my $data = read_file($record, 65536);
    my $rec = defined $data ? eval { $json->decode($data) } : undef;
    return ('unreadable') unless ref $rec eq 'HASH' && ($rec->{protocol} // '') eq 'tenure/1';
    return $rec;
}

sub alive {          # the recorded holder still runs (same pid, same start time)
    my ($holder) = @_;
    return 0 unless kill 0, $holder->{pid} or $!{EPERM};
    open my $st, '<', "/proc/$holder->{pid}/stat" or return 1;    # cannot tell: alive
    my $line = <$st>;
    my @f = split ' ', substr($line, rindex($line, ')') + 2);
    return 0 if $f[0] eq 'Z';
    open my $sys, '<', '/proc/stat' or return 1;
    my ($btime) = map { /^btime (\d+)/ ? $1 : () } <$sys>;
    return abs($btime + $f[19] / sysconf(_SC_CLK_TCK) - $holder->{create_time}) < 1;
}

sub root_identity {  # inode of the root + its root.id (lease.md#fencing)
    my @st = stat $root or return '';
    return join ':', $st[1], read_file("$root/root.id", 64) // '';
}

my $me = {
    pid => $$ + 0, create_time => create_time(), version => $version, started_at => time,
    nonce => join('', map { sprintf '%02x', int rand 256 } 1 .. 8),
    port => defined $port ? $port + 0 : undef,
};
my $root_seen = root_identity() or die "no root at $root\n";
(my $root_id = read_file("$root/root.id", 64) // '') =~ s/\s+//g;

# --- acquire ---------------------------------------------------------------------------------
my $epoch = with_lock($lockfile, sub {
    my ($cur) = read_record();
    return 'unreadable' if defined $cur && !ref $cur;
    return "held by pid $cur->{holder}{pid} (version $cur->{holder}{version})"
        if ref $cur && $cur->{state} eq 'held' && alive($cur->{holder});
    my $floor = (read_file($floorfile, 64) // 0) + 0;
    my $prior = ref $cur ? $cur->{epoch} : 0;
    my $next  = ($prior > $floor ? $prior : $floor) + 1;
    write_atomic($floorfile, "$next\n");
    write_atomic($record, $json->encode({
        protocol => 'tenure/1', family => $family, epoch => $next, holder => $me,
        ttl_s => $ttl + 0, renewed_at => time, seq => 0, state => 'held',
        superseded_by => undef, ($root_id ? (root_id => $root_id) : ()),
        (@ports ? (ports => [map { $_ + 0 } @ports]) : ()),
    }));
    return $next;
});
if ($epoch !~ /^\d+$/) { print STDERR "lease-daemon: not taking the lease: $epoch\n"; exit 1 }
print "holding $family epoch $epoch as $version\n";
STDOUT->flush;

# --- hold: renew every heartbeat, retire when the protocol says so ----------------------------
my $stop;
$SIG{TERM} = $SIG{INT} = sub { $stop = 'signal' };
my $last_renew = time;    # Time::HiRes; a monotonic clock would be better, core Perl lacks one

sub mine { my ($r) = @_; ref $r && $r->{epoch} == $epoch && $r->{holder}{nonce} eq $me->{nonce}
                                && $r->{state} eq 'held' }

sub retire {
    my ($reason) = @_;
    with_lock($lockfile, sub {
        my ($cur) = read_record();
        return unless mine($cur);    # release is a compare-and-set: never clobber a newer holder
        $cur->{state} = 'released';
        write_atomic($record, $json->encode($cur));
    });
    with_lock("$root/tombstones.lock", sub {
        my @lines = split /\n/, read_file("$root/tombstones.jsonl", 1 << 20) // '';
        push @lines, $json->encode({ family => $family, pid => $$ + 0, version => $version,
                                     epoch => $epoch + 0, reason => $reason, at => time });
        @lines = @lines[-200 .. -1] if @lines > 200;    # the newest 200 (root.md#tombstones)
        write_atomic("$root/tombstones.jsonl", join("\n", @lines) . "\n");
    });
    print "retired: $reason\n";
    exit 0;
}

while (1) {
    sleep $beat;
    retire($stop) if $stop;
    if (root_identity() ne $root_seen) { print "retired: root_gone (nothing written)\n"; exit 0 }
    my $verdict = eval {
        with_lock($lockfile, sub {
            my ($cur) = read_record();
            return 'lease_lost' unless mine($cur);
            return 'superseded' if $cur->{superseded_by} && !$ignore_superseded;
            return 'requested' if $cur->{stop_requested};    # a stop asked through the record
            return 'lease_expired' if time - $last_renew > $ttl;
            $cur->{renewed_at} = time;
            $cur->{seq}++;
            write_atomic($record, $json->encode($cur));
            $last_renew = time;
            return '';
        });
    } // 'renew_failed';    # a transient fault: retry until our own deadline passes
    retire('lease_expired') if $verdict eq 'renew_failed' && time - $last_renew > $ttl;
    retire($verdict) if $verdict && $verdict ne 'renew_failed';
}
