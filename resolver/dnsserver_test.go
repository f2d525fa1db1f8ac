package resolver

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// dnsServer is a real DNS server on 127.0.0.1 (UDP) that answers SRV, A and
// AAAA questions from tables the test fills, and NXDOMAIN for names it does
// not know. It is built on golang.org/x/net/dns/dnsmessage, which the core
// module already has through grpc-go, so the test adds no dependency.
//
// resolver returns a *net.Resolver (the pure Go one) that sends every query
// to this server: the dns source then runs its real lookup code end to end.
type dnsServer struct {
	pc   net.PacketConn
	done chan struct{}

	mu    sync.Mutex
	srv   map[string][]dnsmessage.SRVResource // by lower-case FQDN
	ips   map[string][]net.IP
	fail  map[string]bool // names answered with SERVFAIL
	asked map[string]int  // "<type> <name>": questions received
}

func startDNSServer(t *testing.T) *dnsServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &dnsServer{pc: pc, done: make(chan struct{}), srv: map[string][]dnsmessage.SRVResource{}, ips: map[string][]net.IP{}, fail: map[string]bool{}, asked: map[string]int{}}
	go s.serve()
	t.Cleanup(func() {
		pc.Close()
		<-s.done
	})
	return s
}

func fqdn(name string) string {
	name = strings.ToLower(name)
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	return name
}

// setSRV replaces the SRV records of name; target "." is allowed.
func (s *dnsServer) setSRV(name string, records ...*net.SRV) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var rs []dnsmessage.SRVResource
	for _, r := range records {
		rs = append(rs, dnsmessage.SRVResource{Priority: r.Priority, Weight: r.Weight, Port: r.Port, Target: dnsmessage.MustNewName(fqdn(r.Target))})
	}
	s.srv[fqdn(name)] = rs
}

// setIPs replaces the A and AAAA records of name.
func (s *dnsServer) setIPs(name string, ips ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []net.IP
	for _, ip := range ips {
		out = append(out, net.ParseIP(ip))
	}
	s.ips[fqdn(name)] = out
}

func (s *dnsServer) serve() {
	defer close(s.done)
	buf := make([]byte, 1500)
	for {
		n, addr, err := s.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if resp, ok := s.answer(buf[:n]); ok {
			s.pc.WriteTo(resp, addr)
		}
	}
}

func (s *dnsServer) answer(query []byte) ([]byte, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, false
	}
	q, err := p.Question()
	if err != nil {
		return nil, false
	}
	name := strings.ToLower(q.Name.String())
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked[q.Type.String()+" "+name]++
	srvs, haveSRV := s.srv[name]
	ips, haveIPs := s.ips[name]
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	switch {
	case s.fail[name]:
		rh.RCode = dnsmessage.RCodeServerFailure
	case !haveSRV && !haveIPs:
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	if b.StartQuestions() != nil || b.Question(q) != nil || b.StartAnswers() != nil {
		return nil, false
	}
	hdr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 1}
	switch q.Type {
	case dnsmessage.TypeSRV:
		for _, r := range srvs {
			b.SRVResource(hdr, r)
		}
	case dnsmessage.TypeA:
		for _, ip := range ips {
			if v4 := ip.To4(); v4 != nil {
				b.AResource(hdr, dnsmessage.AResource{A: [4]byte(v4)})
			}
		}
	case dnsmessage.TypeAAAA:
		for _, ip := range ips {
			if ip.To4() == nil {
				b.AAAAResource(hdr, dnsmessage.AAAAResource{AAAA: [16]byte(ip.To16())})
			}
		}
	}
	resp, err := b.Finish()
	return resp, err == nil
}

// askedFor returns how many questions of type typ ("TypeA", "TypeSRV") for
// name the server received.
func (s *dnsServer) askedFor(typ, name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.asked[typ+" "+fqdn(name)]
}

// resolver returns a pure-Go *net.Resolver whose every query goes to s.
func (s *dnsServer) resolver() *net.Resolver {
	addr := s.pc.LocalAddr().String()
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp", addr)
		},
	}
}
