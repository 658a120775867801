%% Twin of bench/crash.basm: spawn_link N children that exit with reason boom; the parent
%% traps exits and collects the N {'EXIT', Pid, boom} messages.
%% erlc crash.erl && erl +S 1 +P 2000000 -noshell -run crash main 100000
%%
%% The children are started from lists:seq/2 as idiomatic Erlang does (and as the peer program
%% in /work/shared/peers does). That matters on OTP 25: with a plain counting loop instead, the
%% parent's heap stays tiny, so it is collected again and again while up to N EXIT messages
%% queue up, and a crash costs 3-4 times as much.
-module(crash).
-export([main/1]).

main([NArg]) ->
    N = list_to_integer(NArg),
    process_flag(trap_exit, true),
    T0 = erlang:monotonic_time(microsecond),
    lists:foreach(fun(_) -> spawn_link(fun() -> exit(boom) end) end, lists:seq(1, N)),
    collect(N),
    Us = erlang:monotonic_time(microsecond) - T0,
    io:format("crash n=~w us=~w ms=~w ns_per_crash=~w~n",
              [N, Us, Us div 1000, round(Us * 1000 / max(N, 1))]),
    halt().

collect(0) -> ok;
collect(K) -> receive {'EXIT', _, boom} -> collect(K - 1) end.
