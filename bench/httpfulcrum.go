package bench

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/fulcrum-lb/fulcrum/fulcrumhttp"
)

// fulcrumHTTPConfig is the only setting the fulcrum policy changes from
// fulcrumhttp's defaults: HTTP has no standard health path, so probing
// is off unless a path is named.
const fulcrumHTTPConfig = `{"healthProbe":{"path":"` + probePath + `"}}`

// newFulcrumClient balances with fulcrumhttp over a fulcrum://static
// target listing the fleet (with its weights, if any).
func newFulcrumClient(addrs []string, weights []uint32) (*httpClient, error) {
	entries := make([]string, len(addrs))
	for i, a := range addrs {
		entries[i] = a
		if weights != nil {
			entries[i] += fmt.Sprintf("=%d", weights[i])
		}
	}
	t, err := fulcrumhttp.NewTransport(
		map[string]string{httpService: "fulcrum://static/" + strings.Join(entries, ",")},
		fulcrumhttp.WithConfig(fulcrumHTTPConfig))
	if err != nil {
		return nil, err
	}
	return &httpClient{c: &http.Client{Transport: t}, close: func() { _ = t.Close() }}, nil
}
