package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fulcrum-lb/fulcrum/fulcrumz"
	"github.com/fulcrum-lb/fulcrum/internal/testutil"
)

// legend names the backends of the snapshot's addresses.
func legend(fleet testutil.Fleet) string {
	var parts []string
	for i, b := range fleet {
		parts = append(parts, labels[i]+" = "+b.Addr)
	}
	return strings.Join(parts, ", ")
}

// explain says, from the snapshot alone, why the failing and the slow
// backend got little traffic: the failing one's state and reason, the slow
// one's latency estimate against the median of the healthy ones'.
func explain(ch fulcrumz.Channel, addrs []string) []string {
	byAddr := map[string]fulcrumz.Endpoint{}
	for _, e := range ch.Endpoints {
		byAddr[e.Addresses[0]] = e
	}
	var total uint64
	var healthy []float64
	for i, a := range addrs {
		e := byAddr[a]
		total += e.Picks
		if i != slowIndex && i != failingIndex && e.LatencySeconds > 0 {
			healthy = append(healthy, e.LatencySeconds)
		}
	}
	var why []string
	f := byAddr[addrs[failingIndex]]
	why = append(why, fmt.Sprintf("Why: failing got %d of %d picks: %s (%s).", f.Picks, total, f.State, f.Reason))
	s := byAddr[addrs[slowIndex]]
	slices.Sort(healthy)
	if len(healthy) == 0 || s.LatencySeconds == 0 {
		return append(why, fmt.Sprintf("Why: slow (10x) got %d of %d picks: %s (%s).", s.Picks, total, s.State, s.Reason))
	}
	med := healthy[len(healthy)/2]
	ratio := s.LatencySeconds / med
	lat := fmtDur(time.Duration(s.LatencySeconds * float64(time.Second)))
	medLat := fmtDur(time.Duration(med * float64(time.Second)))
	if ratio > 2 {
		return append(why, fmt.Sprintf("Why: slow (10x) got %d of %d picks: %s, but its latency estimate %s is %.1fx the healthy backends' median %s, and the latency term passes over a candidate more than 2x slower than its rival.",
			s.Picks, total, s.State, lat, ratio, medLat))
	}
	return append(why, fmt.Sprintf("Why: slow (10x) got %d of %d picks: %s; its latency estimate %s is %.1fx the healthy backends' median %s now (the latency term acts beyond 2x; estimates decay between samples).",
		s.Picks, total, s.State, lat, ratio, medLat))
}
