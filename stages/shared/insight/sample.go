package insight

// A sampler lets through at most limit events per second and counts the
// rest, so debug logging of per-packet events cannot flood the disk. It is
// used by one goroutine and allocates nothing.
type sampler struct {
	limit      int
	sec        int64 // the current second, in unix seconds
	n          int   // events let through in sec
	suppressed uint64
}

// allow reports whether an event at now (unix ns) may be logged. When it
// may, suppressed is how many were not since the last one that was.
func (s *sampler) allow(now int64) (ok bool, suppressed uint64) {
	if sec := now / 1e9; sec != s.sec {
		s.sec, s.n = sec, 0
	}
	if s.n >= s.limit {
		s.suppressed++
		return false, 0
	}
	s.n++
	suppressed, s.suppressed = s.suppressed, 0
	return true, suppressed
}
