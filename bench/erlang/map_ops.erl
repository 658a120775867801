%% Twin of bench/map_ops.basm: N maps:put/3 of scrambled integer keys into one map, then N
%% maps:get/2.
%% erlc map_ops.erl && erl +S 1 -noshell -run map_ops main 1000000
-module(map_ops).
-export([main/1]).

main([Arg]) ->
    N = list_to_integer(Arg),
    T0 = erlang:monotonic_time(microsecond),
    M = puts(0, N, #{}),
    T1 = erlang:monotonic_time(microsecond),
    Sum = gets(0, N, M, 0),
    T2 = erlang:monotonic_time(microsecond),
    PutUs = T1 - T0, GetUs = T2 - T1,
    io:format("maps n=~w size=~w sum=~w put_ms=~w get_ms=~w put_ns=~w get_ns=~w~n",
              [N, map_size(M), Sum, PutUs div 1000, GetUs div 1000,
               PutUs * 1000 div N, GetUs * 1000 div N]),
    halt().

key(I) -> (I * 2654435761) band 16#ffffffff.

puts(N, N, M) -> M;
puts(I, N, M) -> puts(I + 1, N, maps:put(key(I), I, M)).

gets(N, N, _, Sum) -> Sum;
gets(I, N, M, Sum) -> gets(I + 1, N, M, Sum + maps:get(key(I), M)).
