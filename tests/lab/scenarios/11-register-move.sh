# REGISTER AND MOVE: A (holder) moves its reservation to B's initiator port (SAS TransportID)
# on relative target port 2, registering B with the new key; with -U A is unregistered.
. "$LAB_TESTS/lib.sh"
ours_start
ok prc -o -G -S 0xaa "$A"
ok prc -o -R -K 0xaa -T 1 "$A"
if ! rtpi_numbered; then
    # no port to move to: the refusal must be the device's (ours = C = direct)
    set +e; prc -o -M -K 0xaa -S 0xbb -T 1 -Q 2 -X sas,5001405aaaaaaa02 "$A"; mv_rc=$?; set -e
    c_start
    json_same $mv_rc -o -M -K 0xaa -S 0xbb -T 1 -Q 2 -X sas,5001405aaaaaaa02 "$A"
    exit 0
fi
ok prc -o -M -K 0xaa -S 0xbb -T 1 -Q 2 -X sas,5001405aaaaaaa02 "$A"
expect_keys "$A" "0xaa 0xbb " "B registered by the move, A kept"
expect_resv "$A" "0xbb wr_ex" "B holds the reservation"
expect_io write "$B" GOOD "B is the holder"
expect_io write "$A" CONFLICT "A is no longer the holder"
ok prc -s "$A"
expect_in "Relative port address: 0x2" "B's registration on port 2"
same_as_sgp -s "$B"
# move back with -U: B's registration goes
ok prc -o -M -K 0xbb -S 0xa1 -T 1 -Q 1 -U -X sas,5001405aaaaaaa01 "$B"
run 0 prc -k "$A"
expect_resv "$A" "0xa1 wr_ex" "A holds again, with key 0xa1"
expect_keys "$B" "0xa1 " "B unregistered by -U (A's old key 0xaa replaced by 0xa1)"
