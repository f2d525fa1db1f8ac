// Command client discovers the passing instances of a Consul service through
// fulcrum://consul/<name> and sends RPCs until every one of them has
// answered.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	// Registers the weighted_least_request policy and the fulcrum:// scheme.
	_ "github.com/fulcrum-lb/fulcrum"
	fresolver "github.com/fulcrum-lb/fulcrum/resolver"
	"github.com/fulcrum-lb/fulcrum/resolver/consul"
)

var (
	consulAddr = flag.String("consul", "127.0.0.1:8500", "HTTP address of a Consul agent")
	name       = flag.String("name", "echo", "Consul service name, as given to the servers")
	want       = flag.Int("want", 1, "wait until at least this many instances are passing")
	timeout    = flag.Duration("timeout", 30*time.Second, "give up after this long")
)

const serviceConfig = `{"loadBalancingConfig":[{"weighted_least_request":{}}]}`

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Println("FAIL:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	cfg := api.DefaultConfig()
	cfg.Address = *consulAddr
	cli, err := api.NewClient(cfg)
	if err != nil {
		return fmt.Errorf("consul client: %v", err)
	}
	// The source is registered under the name the target uses:
	// fulcrum://consul/<service>.
	src, err := consul.NewSource(cli, consul.Options{})
	if err != nil {
		return err
	}
	fresolver.RegisterSource("consul", src)

	target := "fulcrum://consul/" + *name
	cc, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(serviceConfig))
	if err != nil {
		return err
	}
	defer cc.Close()
	client := testgrpc.NewTestServiceClient(cc)

	// Keep sending until every instance passing right now has answered:
	// Consul, asked directly, is the reference the resolver must match.
	answered := make(map[string]int)
	for {
		passing, err := passingInstances(ctx, cli, *name)
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("asking Consul for %s: %v", *name, err)
		}
		missing := 0
		for _, a := range passing {
			if answered[a] == 0 {
				missing++
			}
		}
		if err == nil && len(passing) >= *want && missing == 0 {
			fmt.Printf("passing in Consul: %s\n", strings.Join(passing, ", "))
			var counts []string
			for _, a := range passing {
				counts = append(counts, fmt.Sprintf("%s %d", a, answered[a]))
			}
			fmt.Printf("answers: %s\n", strings.Join(counts, ", "))
			fmt.Printf("OK: reached all %d passing instances of %s through %s\n", len(passing), *name, target)
			return nil
		}
		for range 10 {
			resp, err := client.UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.WaitForReady(true))
			if ctx.Err() != nil {
				return fmt.Errorf("after %v: %d passing instances of %s (want >= %d: %s), answers from %d (%v)",
					*timeout, len(passing), *name, *want, strings.Join(passing, ", "), len(answered), keys(answered))
			}
			if err == nil {
				answered[resp.GetHostname()]++
			}
		}
	}
}

// passingInstances returns host:port of every passing instance, sorted.
func passingInstances(ctx context.Context, cli *api.Client, service string) ([]string, error) {
	entries, _, err := cli.Health().Service(service, "", true, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, err
	}
	var addrs []string
	for _, e := range entries {
		host := e.Service.Address
		if host == "" {
			host = e.Node.Address
		}
		addrs = append(addrs, net.JoinHostPort(host, strconv.Itoa(e.Service.Port)))
	}
	slices.Sort(addrs)
	return addrs, nil
}

func keys(m map[string]int) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
