%% Twin of bench/crash.basm: spawn_link N children that exit with reason boom; the parent
%% traps exits and collects the N {'EXIT', Pid, boom} messages.
%% erlc crash.erl && erl +S 1 +P 2000000 -noshell -run crash main 100000
-module(crash).
-export([main/1]).

main([NArg]) ->
    N = list_to_integer(NArg),
    process_flag(trap_exit, true),
    T0 = erlang:monotonic_time(microsecond),
    start_children(N),
    collect(N),
    Us = erlang:monotonic_time(microsecond) - T0,
    io:format("crash n=~w us=~w ms=~w ns_per_crash=~w~n",
              [N, Us, Us div 1000, round(Us * 1000 / max(N, 1))]),
    halt().

start_children(0) -> ok;
start_children(K) -> spawn_link(fun() -> exit(boom) end), start_children(K - 1).

collect(0) -> ok;
collect(K) -> receive {'EXIT', _, boom} -> collect(K - 1) end.
