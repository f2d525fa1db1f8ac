module github.com/fulcrum-lb/fulcrum/bench/breakerbench

go 1.26.8

require (
	github.com/fulcrum-lb/fulcrum v0.1.0
	github.com/sony/gobreaker/v2 v2.4.0
	go.uber.org/goleak v1.3.0
)

replace github.com/fulcrum-lb/fulcrum => ../..
