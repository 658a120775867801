%% Twin of bench/ring.basm: N processes in a ring pass a countdown token M laps (N*M hops).
%% erlc ring.erl && erl +S 1 +P 2000000 -noshell -run ring main 10000 100
-module(ring).
-export([main/1]).

main([NArg, MArg]) ->
    N = list_to_integer(NArg), M = list_to_integer(MArg),
    T0 = erlang:monotonic_time(microsecond),
    %% Each new member forwards to the one made before it; the first forwards to main.
    Succ = lists:foldl(fun(_, Next) -> spawn(fun() -> member(Next) end) end,
                       self(), lists:seq(2, N)),
    T1 = erlang:monotonic_time(microsecond),
    Hops = N * M,
    Succ ! {token, Hops - 1},
    head(Succ),
    T2 = erlang:monotonic_time(microsecond),
    Us = T2 - T1,
    io:format("ring n=~w m=~w spawn_ms=~w hops=~w us=~w ms=~w hops_per_s=~w ns_per_hop=~.1f~n",
              [N, M, (T1 - T0) div 1000, Hops, Us, Us div 1000,
               round(Hops * 1.0e6 / max(Us, 1)), Us * 1000 / Hops]),
    halt().

member(Next) ->
    receive
        {token, 0} -> Next ! {token, 0};
        {token, K} -> Next ! {token, K - 1}, member(Next)
    end.

head(Succ) ->
    receive
        {token, 0} -> done;
        {token, K} -> Succ ! {token, K - 1}, head(Succ)
    end.
