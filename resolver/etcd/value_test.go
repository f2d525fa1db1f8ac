package etcd

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fulcrum-lb/fulcrum/resolver"
)

func TestParseValue(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    resolver.Endpoint
		wantErr string
	}{
		{
			name: "full object",
			in:   `{"addresses":["127.0.0.1:5001","[::1]:5001"],"weight":2,"metadata":{"zone":"a"}}`,
			want: resolver.Endpoint{Addresses: []string{"127.0.0.1:5001", "[::1]:5001"}, Weight: 2, Metadata: map[string]string{"zone": "a"}},
		},
		{
			name: "addresses only, unknown fields ignored",
			in:   ` {"addresses":["10.0.0.1:80"],"version":"1.2"} `,
			want: resolver.Endpoint{Addresses: []string{"10.0.0.1:80"}},
		},
		{name: "bare host:port", in: "127.0.0.1:5001\n", want: resolver.Endpoint{Addresses: []string{"127.0.0.1:5001"}}},
		{name: "bare IPv6", in: "[::1]:5001", want: resolver.Endpoint{Addresses: []string{"[::1]:5001"}}},
		{name: "bare hostname", in: "user-0.svc:9000", want: resolver.Endpoint{Addresses: []string{"user-0.svc:9000"}}},
		{name: "empty", in: "", wantErr: `etcd: value: "", must be a JSON object or host:port`},
		{name: "no port", in: "127.0.0.1", wantErr: `etcd: value: "127.0.0.1", must be a JSON object or host:port`},
		{name: "JSON string", in: `"127.0.0.1:5001"`, wantErr: `etcd: value: "\"127.0.0.1:5001\"", must be a JSON object or host:port`},
		{name: "two words", in: "a:1 b:2", wantErr: `etcd: value: "a:1 b:2", must be a JSON object or host:port`},
		{name: "truncated JSON", in: `{"addresses":["127.0.0.1:5001"`, wantErr: `etcd: value: "{\"addresses\":[\"127.0.0.1:5001\"", must be a valid instance JSON object: unexpected end of JSON input`},
		{name: "negative weight", in: `{"addresses":["127.0.0.1:5001"],"weight":-1}`, wantErr: "must be a valid instance JSON object: json: cannot unmarshal"},
		{name: "addresses not a list", in: `{"addresses":"127.0.0.1:5001"}`, wantErr: "must be a valid instance JSON object: json: cannot unmarshal"},
		{name: "no addresses", in: `{"weight":1}`, wantErr: "etcd: addresses: [], must be non-empty"},
		{
			name: "zone field beside metadata",
			in:   `{"addresses":["127.0.0.1:5001"],"zone":"a","metadata":{"rack":"r1"}}`,
			want: resolver.Endpoint{Addresses: []string{"127.0.0.1:5001"}, Zone: "a", Metadata: map[string]string{"rack": "r1"}},
		},
		{
			name: "zone field and metadata zone agreeing",
			in:   `{"addresses":["127.0.0.1:5001"],"zone":"a","metadata":{"zone":"a"}}`,
			want: resolver.Endpoint{Addresses: []string{"127.0.0.1:5001"}, Zone: "a", Metadata: map[string]string{"zone": "a"}},
		},
		{name: "zone field and metadata zone differing", in: `{"addresses":["127.0.0.1:5001"],"zone":"a","metadata":{"zone":"b"}}`,
			wantErr: `etcd: zone: "a", must equal metadata.zone "b" when both are given`},
		{name: "zone not a string", in: `{"addresses":["127.0.0.1:5001"],"zone":1}`, wantErr: "must be a valid instance JSON object: json: cannot unmarshal number into Go struct field value.zone of type string"},
		{name: "empty address", in: `{"addresses":["127.0.0.1:5001",""]}`, wantErr: `etcd: addresses: ["127.0.0.1:5001" ""], must not contain an empty address`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseValue([]byte(tt.in))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestParseValue_TruncatesLongValues(t *testing.T) {
	long := make([]byte, 1000)
	for i := range long {
		long[i] = 'x'
	}
	_, err := parseValue(long)
	require.Error(t, err)
	require.Less(t, len(err.Error()), 200, err.Error())
}
