/// The Perl side of ``PerlEvaluator``: one `perl` process per run that evaluates GNU parallel's
/// `{= perl =}` replacement strings the way GNU does, so an expression's globals (`$::G`), its
/// functions and its `$_` behave as they do under GNU parallel.
///
/// What it gives an expression, as GNU 20221122 does: `$_` (the input, after `--trim`), `@arg`
/// (the job's inputs from `$arg[1]`), `$job` with `seq`, `slot` and `skip`, and the functions
/// `Q`, `pQ`, `uq`, `skip`, `seq`, `slot`, `total_jobs`, `hash`, the ten date and time ones
/// (`yyyy_mm_dd_hh_mm_ss` … `hhmm`), `::uniq` and `::make_regexp_ungreedy` (used by `--plus`),
/// `::dirname` and `::shell_quote`.
/// Expressions compile in package `Arg`, as GNU's do.
///
/// The protocol, on descriptors 3 (requests) and 4 (answers); every string is a 32-bit big-endian
/// length and its bytes:
/// - `D` string: compile an expression; answers flags 0 and an empty string, or 1 and the
///   compiler's message.
/// - `E` id seq slot total completed slots count, `count` strings (the job's inputs), then the string
///   `$_` starts as (numbers 32-bit big-endian; `total` is 0 when unknown, else jobs + 1):
///   answers a flags byte (1 `uq()` was called, 2 `skip()` was, 4 the expression died) and the
///   string `$_` ended as (or the error).
/// - `F` string: `--filter`'s code, its replacement strings filled in, evaluated once; answers
///   flags 1 when it is true (4 when it died, with the error).
enum PerlHelper {
    static let script = #"""
use strict; no warnings; use POSIX ();
open(my $in, "<&=3") or die "fd 3: $!"; open(my $out, ">&=4") or die "fd 4: $!";
binmode $in; binmode $out; binmode STDOUT; binmode STDERR;
sub Q { my $s = shift; return "''" if !defined $s || $s eq "";
        return $s if $s !~ /[^-_.+a-z0-9\/]/i;
        $s =~ s/'/'"'"'/g; $s = "'$s'"; $s =~ s/^''//; $s =~ s/''$//; $s }
sub shell_quote { wantarray ? map { Q($_) } @_ : join(" ", map { Q($_) } @_) }
sub pQ { my $s = shift; $s =~ s/[\\\"\$\@]/\\$&/g if defined $s; $s }
sub dirname { require File::Basename; File::Basename::dirname(@_) }
sub uniq { my %seen = map { $_ => 1 } @_; keys %seen }
# GNU's --plus {%…} and {#…} match as little as they can: every quantifier outside a class lazy.
sub make_regexp_ungreedy { my ($re, $class, $escape, $pending, $lazy) = (shift, 0, 0, 0, "");
    for my $c (split //, $re) {
        if ($pending) { $lazy .= "?" if $c ne "?"; $pending = 0 }
        $lazy .= $c;
        if ($escape) { $escape = 0; next } if ($c eq "\\") { $escape = 1; next }
        if ($class) { $class = 0 if $c eq "]"; next } if ($c eq "[") { $class = 1; next }
        $pending = 1 if $c =~ /[*+}]/;
    }
    $lazy .= "?" if $pending; $lazy }
package Job; sub seq { $_[0]{seq} } sub slot { $_[0]{slot} } sub skip { $_[0]{skip} = 1 }
package Arg; our (@arg, $job, $unquote);
sub Q { main::Q(@_) } sub pQ { main::pQ(@_) } sub uq { $unquote = 1 }
sub skip { $job->skip() } sub seq { $job->seq() } sub slot { $job->slot() }
sub total_jobs { $job->{total} } sub hash { require B; B::hash(@_) }
sub now { POSIX::strftime($_[0], localtime(time())) }
sub yyyy_mm_dd_hh_mm_ss { now("%Y-%m-%dT%H:%M:%S") } sub yyyy_mm_dd_hh_mm { now("%Y-%m-%dT%H:%M") }
sub yyyy_mm_dd { now("%Y-%m-%d") } sub hh_mm_ss { now("%H:%M:%S") } sub hh_mm { now("%H:%M") }
sub yyyymmddhhmmss { now("%Y%m%d%H%M%S") } sub yyyymmddhhmm { now("%Y%m%d%H%M") }
sub yyyymmdd { now("%Y%m%d") } sub hhmmss { now("%H%M%S") } sub hhmm { now("%H%M") }
package main;
my @compiled;
sub take { my $n = shift; my $buf = "";
    while (length($buf) < $n) { my $got = sysread($in, $buf, $n - length($buf), length($buf)); exit 0 if !$got }
    $buf }
sub number { unpack("N", take(4)) }
sub string { my $n = number(); $n ? take($n) : "" }
sub answer { my ($flags, $text) = @_; $text = "" if !defined $text;
    my $frame = pack("C N", $flags, length $text) . $text;
    while (length $frame) { my $put = syswrite($out, $frame); exit 0 if !defined $put; substr($frame, 0, $put) = "" } }
while (1) {
    my $kind = take(1);
    if ($kind eq "D") {
        my $code = string();
        my $sub = eval("package Arg; sub { no strict; no warnings; my \$job = shift; $code\n}");
        if ($sub) { push @compiled, $sub; answer(0, "") } else { my $e = $@; $e =~ s/\s+\z//; answer(1, $e) }
    } elsif ($kind eq "E") {
        my ($id, $seq, $slot, $total, $completed, $slots, $count) = map { number() } 1..7;
        my @values = map { string() } 1..$count;
        local $_ = string();
        ($Global::total_completed, $Global::max_jobs_running) = ($completed, $slots);
        my $job = bless { seq => $seq, slot => $slot, total => ($total ? $total - 1 : undef) }, "Job";
        local $Arg::job = $job; local @Arg::arg = (undef, @values); local $Arg::unquote = 0;
        my $ok = eval { $compiled[$id]->($job); 1 };
        my $flags = ($Arg::unquote ? 1 : 0) | ($job->{skip} ? 2 : 0) | ($ok ? 0 : 4);
        answer($flags, $ok ? $_ : $@);
    } elsif ($kind eq "F") {
        my $code = string();
        my $true = eval("package main; no strict; no warnings; $code\n");
        answer($@ ? 4 : ($true ? 1 : 0), $@);
    } else { exit 0 }
}
"""#
}
