package fulcrumz

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"
)

// Handler serves Snapshot (?view=channels, the default) or Resolvers
// (?view=resolvers): as JSON by default or with ?format=json, as a
// plain-text table with ?format=text or when the request accepts
// text/plain but not JSON (curl -H 'Accept: text/plain'). It is read-only
// and answers GET and HEAD only.
func Handler() http.Handler {
	return http.HandlerFunc(serve)
}

func serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "fulcrumz: method: "+r.Method+", must be GET or HEAD", http.StatusMethodNotAllowed)
		return
	}
	format := r.URL.Query().Get("format")
	if format == "" {
		accept := r.Header.Get("Accept")
		format = "json"
		if strings.Contains(accept, "text/plain") && !strings.Contains(accept, "application/json") {
			format = "text"
		}
	}
	view := r.URL.Query().Get("view")
	if view != "" && view != "channels" && view != "resolvers" {
		http.Error(w, fmt.Sprintf("fulcrumz: view: %q, must be \"channels\" or \"resolvers\"", view), http.StatusBadRequest)
		return
	}
	switch format {
	case "json":
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if view == "resolvers" {
			enc.Encode(Resolvers())
			return
		}
		enc.Encode(Snapshot())
	case "text":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if view == "resolvers" {
			WriteResolversText(w, Resolvers())
			return
		}
		WriteText(w, Snapshot())
	default:
		http.Error(w, fmt.Sprintf("fulcrumz: format: %q, must be \"json\" or \"text\"", format), http.StatusBadRequest)
	}
}

// WriteText writes channels as plain-text tables, one per channel.
func WriteText(w io.Writer, channels []Channel) error {
	if len(channels) == 0 {
		_, err := fmt.Fprintln(w, "no live Fulcrum balancers")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for i, ch := range channels {
		if i > 0 {
			fmt.Fprintln(tw)
		}
		c := ch.Counts
		fmt.Fprintf(tw, "%s %s (id %d, since %s)\n", ch.Transport, ch.Target, ch.ID, ch.Created.Format(time.RFC3339))
		fmt.Fprintf(tw, "  endpoints: %d total, %d usable (%d slow start, %d kept by maxEjectionPercent), %d unhealthy, %d ejected, %d warming, %d connecting, %d disconnected\n",
			c.Total, c.Usable, c.SlowStart, c.KeptByCap, c.Unhealthy, c.Ejected, c.Warming, c.Connecting, c.Disconnected)
		if ch.Panic {
			fmt.Fprintf(tw, "  PANIC MODE: %s; picking among all connected endpoints\n", ch.PanicReason)
		}
		if len(ch.Config) > 0 {
			fmt.Fprintf(tw, "  config: %s\n", ch.Config)
		}
		if h := ch.Hedging; h != nil {
			fmt.Fprintf(tw, "  hedging: %s\n", hedgingText(h))
		}
		writeZones(tw, ch.Zones)
		fmt.Fprintln(tw, "  ADDRESS\tSTATE\tWEIGHT\tEFFECTIVE\tIN-FLIGHT\tPICKS\tLATENCY\tBREAKER\tLAST PROBE\tREASON")
		for _, e := range ch.Endpoints {
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%.3g\t%d\t%d\t%s\t%s\t%s\t%s\n",
				strings.Join(e.Addresses, ","), e.State, e.Weight, e.EffectiveWeight, e.InFlight, e.Picks,
				latency(e.LatencySeconds), breakerText(e.Breaker), probeText(e.LastProbe), e.Reason)
		}
	}
	return tw.Flush()
}

func latency(s float64) string {
	if s == 0 {
		return "-"
	}
	return time.Duration(s * float64(time.Second)).Round(time.Microsecond).String()
}

func breakerText(b *Breaker) string {
	switch {
	case b == nil:
		return "-"
	case b.OpenUntil != nil:
		return fmt.Sprintf("%s until %s (trip %d)", b.State, b.OpenUntil.Format("15:04:05.000"), b.Trips)
	case b.Trips > 0:
		return fmt.Sprintf("%s (trips %d)", b.State, b.Trips)
	}
	return b.State
}

func probeText(p *LastProbe) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%s at %s", p.Result, p.At.Format("15:04:05.000"))
}

func hedgingText(h *Hedging) string {
	switch {
	case !h.Adaptive:
		return fmt.Sprintf("delay %s (fixed)", latency(h.DelaySeconds))
	case !h.Known:
		return "delay not known yet (adaptive, too few samples): not hedging"
	}
	return fmt.Sprintf("delay %s (adaptive)", latency(h.DelaySeconds))
}
